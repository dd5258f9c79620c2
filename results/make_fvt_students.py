#!/usr/bin/env python3
"""The untrained FVT students of results/downstream.md: SmolLM2-135M-Instruct moved by FVT alone.

    results/make_fvt_students.py OUT_DIR    # writes OUT_DIR/fvt_bytes and OUT_DIR/fvt_qwen2

Needs the cached SmolLM2 checkpoint (`ctd demo` or `ctd.models.smollm2_checkpoint`) and
../shared/assets/tokenizers/qwen2.
"""

import sys
from pathlib import Path

from ctd.models import (
    export_pretrained,
    fvt_init_embeddings,
    load_causal_lm,
    load_tokenizer,
    to_byte_level,
)

REPO = Path(__file__).resolve().parent.parent
TEACHER = Path.home() / ".cache" / "ctd" / "smollm2-135m-instruct-float32"
QWEN2 = REPO.parent / "shared" / "assets" / "tokenizers" / "qwen2"


def main(out_dir: Path) -> None:
    """Write one FVT student per target tokenizer."""
    for name in ("bytes", "qwen2"):
        model, tokenizer = load_causal_lm(str(TEACHER)), load_tokenizer(str(TEACHER))
        target = to_byte_level(tokenizer) if name == "bytes" else load_tokenizer(str(QWEN2))
        fvt_init_embeddings(model, tokenizer, target)
        export_pretrained(model, target, out_dir / f"fvt_{name}")
        print(f"wrote {out_dir / f'fvt_{name}'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
