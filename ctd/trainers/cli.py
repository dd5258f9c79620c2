"""`ctd fit --config FILE [--config FILE ...] [key=value ...]`."""

from __future__ import annotations

import argparse
import sys

from ctd.config import ConfigError, FitConfig, load_config, to_yaml


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ctd fit`."""
    parser = argparse.ArgumentParser(
        prog="ctd fit",
        description="Tokenizer transfer or cross-tokenizer distillation from YAML configs.",
        epilog="example: ctd fit --config configs/transfer/byte_level.yaml trainer.max_steps=100",
    )
    parser.add_argument(
        "--config", action="append", default=[], help="YAML file (repeat to merge several)"
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the merged config and exit"
    )
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    return parser


def main(argv: list[str]) -> int:
    """Run `ctd fit`."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(FitConfig, args.config, args.overrides)
    except (ConfigError, FileNotFoundError) as error:
        print(f"ctd fit: {error}", file=sys.stderr)
        return 2
    if args.print_config:
        print(to_yaml(config))
        return 0
    from ctd.trainers.fit import run_fit

    result = run_fit(config)
    print(result.summary())
    return 0
