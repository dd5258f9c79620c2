#!/usr/bin/env python3
"""The prompts of results/drafter.md: first user turns of the chitchat corpus (MIT).

    drafter_prompts.py CHITCHAT.jsonl OUT_DIR [--train 64] [--eval 8]

Writes OUT_DIR/train_prompts.jsonl and OUT_DIR/eval_prompts.jsonl (disjoint, in corpus order),
each record `{"id": ..., "prompt": first user message}`; messages longer than 200 characters
are skipped so that every prompt fits a short context.
"""

import argparse
import json
from pathlib import Path

MAX_CHARS = 200


def first_user_turns(path: Path) -> list[dict[str, str]]:
    """`{"id", "prompt"}` for each conversation whose first user message is short."""
    prompts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        users = [m["content"] for m in record["messages"] if m["role"] == "user"]
        if users and 0 < len(users[0].strip()) <= MAX_CHARS:
            prompts.append({"id": str(record.get("id", len(prompts))), "prompt": users[0].strip()})
    return prompts


def main() -> None:
    """Write the two prompt files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chat", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=64)
    parser.add_argument("--eval", type=int, default=8)
    args = parser.parse_args()
    prompts = first_user_turns(args.chat)
    args.out.mkdir(parents=True, exist_ok=True)
    splits = {"train": prompts[: args.train], "eval": prompts[args.train : args.train + args.eval]}
    for name, rows in splits.items():
        with (args.out / f"{name}_prompts.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)


if __name__ == "__main__":
    main()
