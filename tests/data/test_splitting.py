"""Splitting long texts on the best boundary, never inside a UTF-8 character."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctd.data.splitting import split_text


def test_prefers_paragraph_then_line_then_space() -> None:
    text = "aaaa bbbb\ncccc\n\ndddd eeee"
    assert split_text(text, 16) == ["aaaa bbbb\ncccc\n\n", "dddd eeee"]
    assert split_text("aaaa bbbb\ncccc dddd", 16) == ["aaaa bbbb\n", "cccc dddd"]
    assert split_text("aaaa bbbb cccc dddd", 16) == ["aaaa bbbb cccc ", "dddd"]


def test_no_boundary_cuts_between_characters() -> None:
    assert split_text("€€€€", 5) == ["€", "€", "€", "€"]  # 3 bytes each: 2 never fit in 5
    assert split_text("ab€€", 4) == ["ab", "€", "€"]
    assert split_text("short", 100) == ["short"]
    assert split_text("", 8) == []


def test_weak_boundary_too_early_is_ignored() -> None:
    # The only space is in the first quarter: a hard cut keeps pieces long.
    assert split_text("a " + "b" * 14, 8) == ["a bbbbbb", "bbbbbbbb"]


def test_budget_below_one_character_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_document_bytes"):
        split_text("text", 3)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.characters(codec="utf-8"), max_size=200)
    | st.text(alphabet="ab \n€😀é", max_size=200),
    max_document_bytes=st.integers(min_value=4, max_value=40),
)
def test_pieces_fit_and_rebuild_the_text(text: str, max_document_bytes: int) -> None:
    pieces = split_text(text, max_document_bytes)
    assert "".join(pieces) == text
    assert all(0 < len(piece.encode("utf-8")) <= max_document_bytes for piece in pieces)
