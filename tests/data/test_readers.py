"""Readers on hand-written text, JSONL and parquet files."""

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctd.data.readers import check_files_exist, file_format, read_examples

CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_text_file_splits_on_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "\n\nFirst line.\nSecond line.\n\n \n\nThird.\n\t\nLast\n")
    assert list(read_examples(path, max_document_bytes=100)) == [
        "First line.\nSecond line.",
        "Third.",
        "Last",
    ]


def test_long_text_document_is_split_on_lines(tmp_path: Path) -> None:
    lines = [f"line {i:03d} with some words" for i in range(200)]  # 24 bytes + newline each
    path = write(tmp_path / "long.txt", "\n".join(lines) + "\n\nnext document\n")
    examples = list(read_examples(path, max_document_bytes=100))
    assert examples[-1] == "next document"
    body = examples[:-1]
    assert all(len(piece.encode()) <= 100 for piece in body)
    assert all(piece.endswith("\n") for piece in body[:-1])  # cut after whole lines
    assert "".join(body) == "\n".join(lines)
    assert len(body) == 50  # four lines of 25 bytes per piece


def test_gzip_text(tmp_path: Path) -> None:
    path = tmp_path / "a.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("Ünïcödé one\n\ntwo 😀\n")
    assert list(read_examples(path, max_document_bytes=64)) == ["Ünïcödé one", "two 😀"]


def test_jsonl_text_and_messages(tmp_path: Path) -> None:
    records = [{"text": "alpha beta"}, CHAT, {"text": "   "}, {"text": "gamma", "id": 3}]
    path = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in records) + "\n\n")
    assert list(read_examples(path, max_document_bytes=64)) == ["alpha beta", CHAT, "gamma"]


def test_jsonl_long_text_is_split(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", json.dumps({"text": "word " * 30}) + "\n")
    pieces = list(read_examples(path, max_document_bytes=32))
    assert "".join(pieces) == "word " * 30
    assert all(len(piece) <= 32 for piece in pieces)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"title": "x"}', r"a\.jsonl:2: expected a 'text' or a 'messages' field"),
        ("{not json", r"a\.jsonl:2: not valid JSON"),
        ('{"messages": [{"role": "user"}]}', r"a\.jsonl:2: each message needs"),
        ('{"text": 5}', r"a\.jsonl:2: 'text' must be a string"),
        ("[1, 2]", r"a\.jsonl:2: expected a JSON object"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "a.jsonl", '{"text": "ok"}\n' + line + "\n")
    with pytest.raises(ValueError, match=message):
        list(read_examples(path, max_document_bytes=64))


def test_parquet_text_and_messages(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"text": ["one", None, "two three", ""]}), tmp_path / "t.parquet")
    pq.write_table(pa.table({"messages": [CHAT["messages"]]}), tmp_path / "m.parquet")
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "bad.parquet")
    assert list(read_examples(tmp_path / "t.parquet", max_document_bytes=64)) == [
        "one",
        "two three",
    ]
    assert list(read_examples(tmp_path / "m.parquet", max_document_bytes=64)) == [CHAT]
    with pytest.raises(ValueError, match=r"bad\.parquet: expected a 'text' or a 'messages'"):
        list(read_examples(tmp_path / "bad.parquet", max_document_bytes=64))


def test_parquet_without_pyarrow_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)
    path = write(tmp_path / "a.parquet", "")
    with pytest.raises(ImportError, match=r"a\.parquet needs pyarrow"):
        list(read_examples(path, max_document_bytes=64))


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.txt"):
        check_files_exist([tmp_path / "nothere.txt"])
    with pytest.raises(ValueError, match=r"data\.csv: unsupported file type"):
        file_format(tmp_path / "data.csv")
    assert file_format("x.JSONL.gz") == "jsonl"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(alphabet="ab é€😀\n", max_size=400),
    max_document_bytes=st.integers(min_value=4, max_value=32),
)
def test_streamed_text_pieces_fit_and_keep_the_text(
    tmp_path: Path, text: str, max_document_bytes: int
) -> None:
    path = write(tmp_path / "h.txt", text)
    pieces = list(read_examples(path, max_document_bytes=max_document_bytes))
    assert all(0 < len(str(piece).encode()) <= max_document_bytes for piece in pieces)
    assert "".join("".join(map(str, pieces)).split()) == "".join(text.split())
