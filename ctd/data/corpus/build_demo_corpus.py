"""Rebuild `train.txt.gz` and `heldout.txt.gz` from the public-domain sources (see SOURCES.md).

Run: `python ctd/data/corpus/build_demo_corpus.py /path/to/corpora/text` (development only; the
script is not shipped in the wheel). The output is byte-for-byte reproducible.
"""

from __future__ import annotations

import gzip
import random
import re
import sys
from pathlib import Path

BIBLE_VERSES_PER_DOCUMENT = 20
BIBLE_TRAIN_VERSES = 12_000  # Genesis 1:1 to 2 Chronicles 36:6
BIBLE_HELD_OUT_VERSES = 1_000  # Hebrews 8:10 to Revelation 22:21
JARGON_HELD_OUT_EVERY = 10  # every 10th lexicon entry is held out
_JARGON_HEADWORD = re.compile(r"^   :[^:]+:")
_JARGON_LETTER_INDEX = re.compile(r"^  [^ ]")  # "  O", then a list of the next headwords


def bible_documents(path: Path) -> tuple[list[str], list[str]]:
    """Training and held-out documents of consecutive verses (one verse per line)."""
    verses = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def group(part: list[str]) -> list[str]:
        step = BIBLE_VERSES_PER_DOCUMENT
        return ["\n".join(part[start : start + step]) for start in range(0, len(part), step)]

    return group(verses[:BIBLE_TRAIN_VERSES]), group(verses[-BIBLE_HELD_OUT_VERSES:])


def jargon_entries(path: Path) -> list[str]:
    """Lexicon entries: the `:headword:` line, then each paragraph unwrapped on one line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if _JARGON_HEADWORD.match(line))
    end = next(i for i, line in enumerate(lines) if re.search(r"Part\sIII\.\sAppendices", line))
    entries: list[list[list[str]]] = []
    in_letter_index = False
    for line in lines[start:end]:
        if _JARGON_HEADWORD.match(line):
            entries.append([[line.strip()]])
            in_letter_index = False
        elif in_letter_index or _JARGON_LETTER_INDEX.match(line):
            in_letter_index = True
        elif not line.strip():
            entries[-1].append([])
        else:
            entries[-1][-1].append(line.strip())
    return ["\n".join(" ".join(p) for p in entry if p) for entry in entries]


def write_gzip(path: Path, documents: list[str]) -> None:
    """Documents separated by blank lines, gzip with a fixed header (reproducible bytes)."""
    data = ("\n\n".join(documents) + "\n").encode("utf-8")
    with path.open("wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as handle:
        handle.write(data)
    print(f"{path.name}: {len(documents)} documents, {len(data)} bytes, gzip {path.stat().st_size}")


def main(source_directory: Path) -> None:
    """Build both files next to this script."""
    bible_train, bible_held_out = bible_documents(source_directory / "bible-kjv.en.txt")
    entries = jargon_entries(source_directory / "jargon.en.txt")
    jargon_train = [e for i, e in enumerate(entries) if i % JARGON_HELD_OUT_EVERY != 0]
    jargon_held_out = [e for i, e in enumerate(entries) if i % JARGON_HELD_OUT_EVERY == 0]
    train, held_out = bible_train + jargon_train, bible_held_out + jargon_held_out
    random.Random(0).shuffle(train)
    random.Random(1).shuffle(held_out)
    here = Path(__file__).parent
    write_gzip(here / "train.txt.gz", train)
    write_gzip(here / "heldout.txt.gz", held_out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
