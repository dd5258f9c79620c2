"""The demo's bundled data: public-domain English text and GPT-2's tokenizer (MIT).

The corpus is described in `ctd/data/corpus/SOURCES.md`, the tokenizer in
`ctd/data/tokenizers/SOURCES.md`.
"""

from __future__ import annotations

import gzip
import os
import shutil
from importlib import resources
from pathlib import Path

_CORPUS_FILES = ("train.txt.gz", "heldout.txt.gz")
BUNDLED_TOKENIZERS = ("gpt2",)
"""Tokenizers shipped inside ctd (`bundled_tokenizer_dir`)."""


def demo_corpus_paths() -> tuple[Path, Path]:
    """Paths of the demo corpus's training file (2.9 MB of text) and held-out file (0.3 MB).

    Both are gzip-compressed text files with blank-line separated documents, ready for
    `CrossTokenizerDataModule`. The held-out documents are not in the training file.

    Raises:
        FileNotFoundError: If the package was installed without its data files.
    """
    corpus = resources.files("ctd.data").joinpath("corpus")
    paths = tuple(Path(str(corpus.joinpath(name))) for name in _CORPUS_FILES)
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"demo corpus file missing from the installation: {path}")
    return paths[0], paths[1]


def bundled_tokenizer_dir(name: str, cache_dir: Path) -> Path:
    """A tokenizer folder (for `AutoTokenizer.from_pretrained`) of a tokenizer shipped in ctd.

    The package keeps `tokenizer.json` gzip-compressed; the first call writes the plain files
    to `cache_dir/tokenizers/<name>` (atomically: an interrupted call leaves no folder that a
    later call accepts), later calls return that folder at once.

    Args:
        name: One of `BUNDLED_TOKENIZERS`.
        cache_dir: Where to keep the unpacked folder.

    Raises:
        ValueError: An unknown name.
        FileNotFoundError: The package was installed without its data files.
    """
    if name not in BUNDLED_TOKENIZERS:
        raise ValueError(f"no bundled tokenizer {name!r}; bundled: {', '.join(BUNDLED_TOKENIZERS)}")
    source = Path(str(resources.files("ctd.data").joinpath("tokenizers", name)))
    packed, config = source / "tokenizer.json.gz", source / "tokenizer_config.json"
    for path in (packed, config):
        if not path.is_file():
            raise FileNotFoundError(f"bundled tokenizer file missing from the installation: {path}")
    out_dir = Path(cache_dir) / "tokenizers" / name
    if (out_dir / "tokenizer.json").is_file():
        return out_dir
    partial_dir = out_dir.with_name(f"{name}.partial-{os.getpid()}")
    shutil.rmtree(partial_dir, ignore_errors=True)
    partial_dir.mkdir(parents=True)
    (partial_dir / "tokenizer.json").write_bytes(gzip.decompress(packed.read_bytes()))
    shutil.copyfile(config, partial_dir / "tokenizer_config.json")
    shutil.rmtree(out_dir, ignore_errors=True)
    partial_dir.rename(out_dir)
    return out_dir
