"""The bundled demo corpus: present, readable, documented, and train/held-out disjoint."""

from pathlib import Path

from ctd.data import demo_corpus_paths, read_examples


def test_demo_corpus_is_bundled_with_sources() -> None:
    train, held_out = demo_corpus_paths()
    assert train.name == "train.txt.gz"
    assert held_out.name == "heldout.txt.gz"
    assert 0.8e6 < train.stat().st_size < 1.5e6  # compressed size committed to git
    sources = (train.parent / "SOURCES.md").read_text(encoding="utf-8")
    assert "public domain" in sources
    assert "King James" in sources
    assert "Jargon File" in sources


def test_demo_documents_are_disjoint_and_several_megabytes() -> None:
    train, held_out = demo_corpus_paths()
    train_docs = list(read_examples(train, max_document_bytes=1 << 20))
    held_out_docs = list(read_examples(held_out, max_document_bytes=1 << 20))
    train_bytes = sum(len(str(doc).encode()) for doc in train_docs)
    assert 2e6 < train_bytes < 4e6
    assert len(held_out_docs) > 200
    assert set(map(str, train_docs)).isdisjoint(map(str, held_out_docs))


def test_demo_split_to_small_contexts_keeps_all_text() -> None:
    _, held_out = demo_corpus_paths()
    whole = [str(doc) for doc in read_examples(held_out, max_document_bytes=1 << 20)]
    pieces = [str(doc) for doc in read_examples(held_out, max_document_bytes=512)]
    assert all(len(piece.encode()) <= 512 for piece in pieces)
    assert "".join("".join(whole).split()) == "".join("".join(pieces).split())
    assert isinstance(held_out, Path)
