"""The `ctd` command: a thin dispatcher to one module per subcommand.

Each subcommand lives in its own module exposing `main(argv: list[str]) -> int`; it is imported
only when invoked, so `ctd --help` stays fast and a subcommand that is not built yet does not
appear at all.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "align": ("ctd.alignment.cli", "show the chunks of two tokenizations of a text side by side"),
    "tokenizer-bias": (
        "ctd.alignment.bias_cli",
        "compute tokenization-bias statistics of a tokenizer pair (for mode=unbiased)",
    ),
    "transplant": (
        "ctd.models.transplant_cli",
        "give a model a donor's tokenizer by OMP over shared tokens, without training",
    ),
    "fit": ("ctd.trainers.cli", "train from a YAML config plus key=value overrides"),
    "cache-teacher": (
        "ctd.trainers.cache_cli",
        "run a distillation config's teacher once and store its log-probs for training",
    ),
    "generate": ("ctd.data.generate_cli", "let a target answer prompts (distillation data)"),
    "make-drafter": ("ctd.models.trim_cli", "a drafter from a target: its first k layers"),
    "specdec": (
        "ctd.specdec.cli",
        "speculative decoding with a drafter (any tokenizer): alpha, tau, MBSU, tokens/s",
    ),
    "demo": ("ctd.demo", "the main job: move SmolLM2-135M to a new tokenizer with ALM, offline"),
    "ensemble": (
        "ctd.ensemble.cli",
        "bits per byte and accuracy of models and their ensemble (lockstep or bytes)",
    ),
    "evaluate": (
        "ctd.evaluation.cli",
        "zero-shot accuracy on downstream tasks (PIQA, ARC, ...) and bits per byte of a model",
    ),
}


def available_commands() -> dict[str, tuple[str, str]]:
    """The subcommands whose module exists in this installation."""
    return {
        name: spec
        for name, spec in COMMANDS.items()
        if importlib.util.find_spec(spec[0]) is not None
    }


def _usage(commands: dict[str, tuple[str, str]]) -> str:
    lines = ["usage: ctd <command> [options]", "", "commands:"]
    lines += [f"  {name:<16}{help_text}" for name, (_, help_text) in commands.items()]
    lines += ["", "`ctd <command> --help` for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ctd` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = available_commands()
    if not args or args[0] in {"-h", "--help"}:
        print(_usage(commands))
        return 0
    if args[0] == "--version":
        from ctd import __version__

        print(f"ctd {__version__}")
        return 0
    name = args[0]
    if name not in commands:
        print(f"ctd: unknown command {name!r}\n\n{_usage(commands)}", file=sys.stderr)
        return 2
    module = importlib.import_module(commands[name][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
