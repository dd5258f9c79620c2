"""The bundled demo corpus: public-domain English text (see `ctd/data/corpus/SOURCES.md`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CORPUS_FILES = ("train.txt.gz", "heldout.txt.gz")


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
