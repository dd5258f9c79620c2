#!/usr/bin/env python3
"""The texts results/transfer.md scores bits per byte on, in and out of the training domain.

The students train on the bundled corpus (King James Bible, Jargon File). In-domain: the start of
its held-out split (`ctd/data/corpus/heldout.txt.gz`, never trained on). Out-of-domain: prose
from the Debian Reference (parallel in every language, `results/ensemble_bpb.passage`): English,
and de/fr/ja/zh-cn. Each is cut to NUM_BYTES UTF-8 bytes.

    results/transfer_ood_texts.py OUT_DIR [NUM_BYTES]
    # writes OUT_DIR/indomain.en.txt and OUT_DIR/ood.<language>.txt
"""

import gzip
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensemble_bpb import LANGUAGES, passage  # noqa: E402

HELDOUT = Path(__file__).resolve().parents[1] / "ctd" / "data" / "corpus" / "heldout.txt.gz"


def indomain(num_bytes: int) -> str:
    """The first num_bytes of the held-out split (cut at a character boundary)."""
    text = gzip.decompress(HELDOUT.read_bytes())[:num_bytes]
    return text.decode("utf-8", errors="ignore")


def main(out_dir: Path, num_bytes: int) -> None:
    """Write the in-domain passage and one out-of-domain passage per language."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "indomain.en.txt").write_text(indomain(num_bytes), encoding="utf-8")
    for language in LANGUAGES:
        path = out_dir / f"ood.{language}.txt"
        path.write_text(passage(language, num_bytes), encoding="utf-8")
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 16384)
