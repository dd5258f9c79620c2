"""Independent references for the alignment tests."""

from __future__ import annotations

from ctd.alignment import ChunkAlignment, TokenizedText


def text_token_spans(tokens: TokenizedText) -> list[tuple[int, int, bool]]:
    """(start, end, is_special) of every token except zero-width specials, in order."""
    return [
        (int(start), int(end), bool(special))
        for start, end, special in zip(
            tokens.byte_starts, tokens.byte_ends, tokens.is_special, strict=True
        )
        if not (special and start == end)
    ]


def brute_force_chunks(teacher: TokenizedText, student: TokenizedText) -> list[tuple[int, int]]:
    """Byte spans of the text chunks: consecutive common boundary offsets (sets, intersected)
    whose interval both sides tile exactly with tokens of one kind (all text or all special)."""
    sides = [text_token_spans(teacher), text_token_spans(student)]
    boundaries = [{pos for start, end, _ in spans for pos in (start, end)} for spans in sides]
    common = sorted(boundaries[0] & boundaries[1])
    chunks = []
    for left, right in zip(common, common[1:], strict=False):
        ok = True
        for spans in sides:
            inside = [(s, e, sp) for s, e, sp in spans if left <= s and e <= right and e > s]
            covered = sum(e - s for s, e, _ in inside)
            kinds = {sp for _, _, sp in inside}
            ok &= covered == right - left and len(kinds) == 1
        if ok and kinds == {False}:
            chunks.append((left, right))
    return chunks


def check_alignment_invariants(
    teacher: TokenizedText, student: TokenizedText, result: ChunkAlignment
) -> None:
    """Chunks: sorted, non-overlapping, contiguous >= 1 token per side, equal bytes per side."""
    assert len(result.teacher_chunk_index) == len(teacher)
    assert len(result.student_chunk_index) == len(student)
    starts, ends = result.chunk_byte_starts, result.chunk_byte_ends
    assert all(ends[:-1] <= starts[1:]), "chunks overlap or are out of order"
    for tokens, index, last in (
        (teacher, result.teacher_chunk_index, result.teacher_chunk_last_token),
        (student, result.student_chunk_index, result.student_chunk_last_token),
    ):
        for chunk in range(result.num_chunks):
            members = [i for i, c in enumerate(index) if c == chunk]
            assert members, f"chunk {chunk} has no token"
            assert members == list(range(members[0], members[-1] + 1)), "not contiguous"
            assert members[-1] == last[chunk]
            token_starts = [int(tokens.byte_starts[i]) for i in members]
            token_ends = [int(tokens.byte_ends[i]) for i in members]
            assert min(token_starts) == starts[chunk]
            assert max(token_ends) == ends[chunk]
            widths = sum(e - s for s, e in zip(token_starts, token_ends, strict=True))
            assert widths == ends[chunk] - starts[chunk], "side does not tile its chunk"
