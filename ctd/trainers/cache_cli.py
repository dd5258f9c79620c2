"""`ctd cache-teacher --config FILE [key=value ...]`: run the teacher once, write its cache.

The same config as `ctd fit` (task `distill`); the cache goes to `--output DIR` or, without it,
to `teacher.cache`. Train from it with `ctd fit --config FILE teacher.cache=DIR`. Rerunning the
command after an interruption resumes after the last finished shard.
"""

from __future__ import annotations

import argparse
import json

from ctd.trainers.cli import USER_ERRORS, add_config_arguments, report_user_error


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ctd cache-teacher`."""
    parser = argparse.ArgumentParser(
        prog="ctd cache-teacher",
        description=(
            "Run a distillation config's teacher once over its training and validation data and "
            "store its token, space and EOS log-probs (12 bytes per teacher token, float32)."
        ),
        epilog=(
            "example: ctd cache-teacher --config configs/transfer/smollm2_to_bytes.yaml "
            "teacher.cache=runs/teacher_cache, then the same `ctd fit` command"
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--output", help="cache directory (default: teacher.cache)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="teacher batch (default: data.batch_size)"
    )
    parser.add_argument(
        "--shard-documents", type=int, default=1024, help="documents per shard (default 1024)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="the summary as one JSON line")
    return parser


def main(argv: list[str]) -> int:
    """Run `ctd cache-teacher`; bad input prints `ctd cache-teacher: error: ...`, returns 2."""
    from ctd.trainers.fit import load_run_config
    from ctd.trainers.teacher_cache import cache_summary, write_teacher_cache

    args = build_parser().parse_args(argv)
    try:
        config = load_run_config(args.config, args.overrides)
        output = args.output or config.teacher.cache
        if not output:
            raise ValueError("give the cache directory: --output DIR or teacher.cache=DIR")
        batch_size = args.batch_size or config.data.batch_size
        if batch_size < 1 or args.shard_documents < 1:
            raise ValueError("--batch-size and --shard-documents must be >= 1")
        summary = write_teacher_cache(
            config,
            output,
            batch_size=batch_size,
            shard_documents=args.shard_documents,
            progress=not args.no_progress,
        )
    except USER_ERRORS as error:
        return report_user_error("ctd cache-teacher", error, args.debug)
    print(f"teacher cache {output}: {cache_summary(summary)}")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0
