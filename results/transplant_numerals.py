"""results/transplant.md, numerals: which numeral tokens of a new vocabulary have no anchor.

The paper's caveat: where the two tokenizers split numbers differently, numeral tokens have no
byte-identical anchor and OMP must invent them. For SmolLM2-135M-Instruct's tokenizer as the
base and each real tokenizer in ../shared/assets/tokenizers as the new one, this counts the new
vocabulary's numeral tokens (` ?[0-9]+([.,][0-9]+)*`), those without an exact anchor, and how
many of those `numbers="digits"` makes from their base pieces instead (`transplant_plan`).

    .venv/bin/python results/transplant_numerals.py --out results/transplant/numerals.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ctd.models import load_tokenizer
from ctd.models.transplant import transplant_plan

TOKENIZERS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "tokenizers"
NEW = ("gemma3", "llama3", "qwen2", "gpt2", "gpt-neox-20b", "mistral-nemo-tekken", "phi3")


def main() -> None:
    """Count per tokenizer; write --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    base = load_tokenizer(str(TOKENIZERS / "smollm2"))
    rows = {}
    for name in NEW:
        new = load_tokenizer(str(TOKENIZERS / name))
        plan = transplant_plan(base, new, numbers="digits")
        rows[name] = {
            "vocabulary": plan.num_rows,
            "unanchored_numerals": len(plan.unanchored_numerals),
            "made_from_digits": len(plan.digits),
            "examples": sorted(plan.unanchored_numerals, key=lambda s: (len(s), s))[:6],
        }
        print(name, rows[name], flush=True)
    result = {"base": "smollm2", "tokenizers": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
