"""`ctd fit --config FILE [--config FILE ...] [key=value ...]`: any task of the registry."""

from __future__ import annotations

import argparse
import sys
import traceback

from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf.errors import OmegaConfBaseException

USER_ERRORS = (ValueError, OSError, OmegaConfBaseException, MisconfigurationException)
"""What bad input raises at load and set-up time (reported in one line, exit code 2)."""


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` (repeatable), `--debug` and the `key=value` overrides of a config command."""
    parser.add_argument(
        "--config", action="append", default=[], help="YAML file (repeat to merge several)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of input errors")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides")


def report_user_error(prog: str, error: BaseException, debug: bool) -> int:
    """Print `<prog>: error: <one line>` (with `debug`, the traceback first); exit code 2."""
    if debug:
        traceback.print_exc()
    message = " ".join(str(error).split()) or repr(error)
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ctd fit`."""
    from ctd.trainers.registry import TASKS

    tasks = "\n".join(f"  {name:<10}{task.summary}" for name, task in TASKS.items())
    parser = argparse.ArgumentParser(
        prog="ctd fit",
        description="Train a task from YAML configs plus dotted key=value overrides.",
        epilog=(
            f"tasks (the config's `task` key, default distill):\n{tasks}\n\n"
            "example: ctd fit --config configs/transfer/smollm2_to_bytes.yaml "
            "trainer.max_steps=100"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--print-config", action="store_true", help="print the merged config and exit"
    )
    return parser


def main(argv: list[str]) -> int:
    """Run `ctd fit`; bad input prints `ctd fit: error: ...` and returns 2."""
    from ctd.config import to_yaml
    from ctd.trainers.faults import NonFiniteError
    from ctd.trainers.fit import load_run_config, prepare, train

    args = build_parser().parse_args(argv)
    try:
        config = load_run_config(args.config, args.overrides)
        if args.print_config:
            print(to_yaml(config))
            return 0
        prepared = prepare(config)
    except USER_ERRORS as error:
        return report_user_error("ctd fit", error, args.debug)
    try:
        print(train(config, prepared).summary())
    except NonFiniteError as error:  # the step, the document and the loss, in one line
        print(f"ctd fit: error: {error}", file=sys.stderr)
        return 1
    return 0
