"""`token_bias` against hand-worked values and a brute-force tokenkit pair bias.

Two tiny byte-level BPE tokenizers over "abcd" whose segmentations are easy to follow:
teacher merges b+c before a+b ("abc" -> a | bc, "abd" -> ab | d), student merges a+b then ab+d
("abc" -> ab | c, "abd" -> abd).
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from alignment_support import TRAIN_TEXT, trained_tokenizer
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from ctd.alignment import TokenizationBias, align, encode, encode_batch, token_bias, token_bytes
from ctd.alignment.bias_cli import _corpus_batches
from ctd.alignment.bias_cli import main as bias_main

CORPUS = ["abc", "abd", "abab", "dabc"]


def bpe(vocab: list[str], merges: list[tuple[str, str]]) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE({piece: i for i, piece in enumerate(vocab)}, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def teacher() -> Tokenizer:
    return bpe([*"abcd", "bc", "ab"], [("b", "c"), ("a", "b")])


def student() -> Tokenizer:
    return bpe([*"abcd", "ab", "abd"], [("a", "b"), ("ab", "d")])


def bias_of(tokenizer: Tokenizer, corpus: list[str]) -> dict[str, float]:
    ids = encode_batch(tokenizer, corpus, add_special_tokens=False).input_ids
    values = token_bias(token_bytes(tokenizer), [ids])
    return {tokenizer.id_to_token(i): float(v) for i, v in enumerate(values)}


def test_hand_worked_values() -> None:
    # teacher tokens of CORPUS: a bc | ab d | ab ab | d a bc -> a:2 bc:2 ab:3 d:2 (b, c: 0)
    # a: longer tokens starting with "a" = ab (3) -> 3 / (3 + 2); b: bc (2), b itself 0 -> 1;
    # c: never seen -> 1 (biased); d, bc, ab: nothing longer starts with them -> 0
    assert bias_of(teacher(), CORPUS) == {
        "a": 0.6,
        "b": 1.0,
        "c": 1.0,
        "d": 0.0,
        "bc": 0.0,
        "ab": 0.0,
    }
    # student tokens: ab c | abd | ab ab | d ab c -> ab:4 c:2 abd:1 d:1 (a, b: 0)
    # a: ab + abd = 5 over 5 -> 1; ab: abd (1) / (1 + 4)
    assert bias_of(student(), CORPUS) == {
        "a": 1.0,
        "b": 1.0,
        "c": 0.0,
        "d": 0.0,
        "ab": 0.2,
        "abd": 0.0,
    }


def test_special_tokens_are_unbiased() -> None:
    tokenizer = teacher()
    tokenizer.add_special_tokens(["<s>"])  # occurs in the text: counted, but never biased
    values = bias_of(tokenizer, ["<s>ab", "<s>abc"])
    assert values["<s>"] == 0.0
    assert values["a"] == 0.5  # a | bc once, ab once


# ---- brute force: the definition by enumeration -------------------------------------------


def ctd_bias_by_enumeration(tokenizer: Tokenizer, corpus: list[str]) -> dict[str, float]:
    """For each vocabulary string t: over every token the tokenizer emits, count the tokens
    equal to t (N) and the longer ones that start with t (M); M / (M + N), 1 if never."""
    emitted = [piece for text in corpus for piece in tokenizer.encode(text).tokens]
    out = {}
    for piece in tokenizer.get_vocab():
        equal = sum(token == piece for token in emitted)
        longer = sum(token != piece and token.startswith(piece) for token in emitted)
        out[piece] = longer / (equal + longer) if equal + longer else 1.0
    return out


def cover_dict(piece: str, tokenizer: Tokenizer, *, whole_prefix_only: bool) -> dict[str, tuple]:
    """tokenkit's cover set of `piece`: every tokenize(piece[:i]) + [b], b a vocabulary token
    starting with piece[i:], that re-tokenizes to itself; keyed by the non-empty overhang (the
    text past piece's end), the smallest i winning a shared key. Value: (i, b)."""
    covers: dict[str, tuple] = {}
    vocab = tokenizer.get_vocab()
    for i in range(len(piece) - 1, -1, -1):
        if whole_prefix_only and i > 0:
            continue
        head = tokenizer.encode(piece[:i]).tokens if i else []
        for b in vocab:
            sequence = [*head, b]
            if b.startswith(piece[i:]) and tokenizer.encode("".join(sequence)).tokens == sequence:
                overhang = "".join(sequence)[len(piece) :]
                if overhang:
                    covers[overhang] = (i, b)
    return covers


def tokenkit_pair_bias(
    pair: tuple[str, str], corpus: list[str], *, whole_prefix_only: bool = False
) -> tuple[float, float]:
    """bias1, bias2 of tokenkit's compute_pair_bias, unigram probabilities without smoothing."""
    sides = [teacher(), student()]
    covers = [
        cover_dict(p, tok, whole_prefix_only=whole_prefix_only)
        for p, tok in zip(pair, sides, strict=True)
    ]
    # the other side's overhangs are all of its covers' (any i)
    others = [
        set(cover_dict(p, tok, whole_prefix_only=False)) for p, tok in zip(pair, sides, strict=True)
    ]
    biases = []
    for tokenizer, own, other in zip(sides, covers, others[::-1], strict=True):
        counts = Counter(p for text in corpus for p in tokenizer.encode(text).tokens)
        total = sum(counts.values())
        biases.append(sum(counts[b] / total for key, (_, b) in own.items() if key not in other))
    return biases[0], biases[1]


def candidate_pairs() -> list[tuple[str, str]]:
    """tokenkit's candidate pairs: one token a suffix of the other."""
    return [
        (t, s)
        for t in teacher().get_vocab()
        for s in student().get_vocab()
        if t.endswith(s) or s.endswith(t)
    ]


@pytest.fixture(scope="module")
def random_corpus() -> list[str]:
    rng = random.Random(0)
    return ["".join(rng.choice("abcd") for _ in range(rng.randint(1, 12))) for _ in range(200)]


def test_matches_enumeration_on_a_random_corpus(random_corpus: list[str]) -> None:
    for tokenizer in (teacher(), student()):
        expected = ctd_bias_by_enumeration(tokenizer, random_corpus)
        assert bias_of(tokenizer, random_corpus) == pytest.approx(expected, abs=1e-12)


def test_hand_worked_tokenkit_pair_bias() -> None:
    # pair (ab, ab). Teacher covers of "ab": i = 1: [a] + bc re-tokenizes "abc" to a | bc,
    # overhang "c" ([a, b] does not: "ab" is one token). Student covers: i = 0: abd, overhang
    # "d". Disjoint, so bias1 = P_T(bc) = 2/9 and bias2 = P_S(abd) = 1/8.
    assert tokenkit_pair_bias(("ab", "ab"), CORPUS) == pytest.approx((2 / 9, 1 / 8))
    # pair (a, a): teacher overhang "b" (ab); student "b" (ab) and "bd" (abd): bias2 = 1/8
    assert tokenkit_pair_bias(("a", "a"), CORPUS) == pytest.approx((0.0, 1 / 8))


def test_bounds_the_whole_prefix_part_of_tokenkit_bias(random_corpus: list[str]) -> None:
    """What the docstring claims: an upper bound of tokenkit's covers with i = 0 only."""
    t_bias, s_bias = bias_of(teacher(), random_corpus), bias_of(student(), random_corpus)
    pairs = candidate_pairs()
    assert sorted(pairs) == [  # one token a suffix of the other
        ("a", "a"),
        ("ab", "ab"),
        ("ab", "b"),
        ("b", "ab"),
        ("b", "b"),
        ("bc", "c"),
        ("c", "c"),
        ("d", "abd"),
        ("d", "d"),
    ]
    for pair in pairs:
        bias1, bias2 = tokenkit_pair_bias(pair, random_corpus, whole_prefix_only=True)
        assert bias1 <= t_bias[pair[0]] + 1e-12, pair
        assert bias2 <= s_bias[pair[1]] + 1e-12, pair


def test_is_not_an_upper_bound_of_tokenkit_pair_bias(random_corpus: list[str]) -> None:
    """The docstring used to claim a bound of the full pair bias: false for (ab, ab)."""
    for corpus in (CORPUS, random_corpus):
        bias1, _ = tokenkit_pair_bias(("ab", "ab"), corpus)
        assert bias1 > 0.0
        assert bias_of(teacher(), corpus)["ab"] == 0.0
    # So at threshold 0.2 tokenkit merges the chunks of "abab" (bias1 = 2/9 > 0.2) while
    # ctd keeps the boundary after the first "ab" (teacher 0.0, student 0.2 <= 0.2).
    (t,), (s,) = encode(teacher(), ["abab"]), encode(student(), ["abab"])
    bias = TokenizationBias(
        np.array(list(bias_of(teacher(), CORPUS).values())),
        np.array(list(bias_of(student(), CORPUS).values())),
        threshold=0.2,
    )
    kwargs = {"teacher_token_bytes": token_bytes(teacher()), "student_token_bytes": None}
    chunks = align(t, s, mode="unbiased", bias=bias, **kwargs)
    assert list(zip(chunks.chunk_byte_starts, chunks.chunk_byte_ends, strict=True)) == [
        (0, 2),
        (2, 4),
    ]


# ---- ctd tokenizer-bias ----------------------------------------------------------------------


def test_cli_writes_the_hand_worked_values(tmp_path, capsys) -> None:
    paths = []
    for name, tokenizer in (("teacher", teacher()), ("student", student())):
        paths.append(tmp_path / f"{name}.json")
        tokenizer.save(str(paths[-1]))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(CORPUS), encoding="utf-8")
    output = tmp_path / "bias.npz"
    argv = ["--teacher", str(paths[0]), "--student", str(paths[1]), "--corpus", str(corpus)]
    assert bias_main([*argv, "--output", str(output)]) == 0
    loaded = TokenizationBias.load(output)
    assert loaded.teacher_bias.tolist() == [0.6, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert loaded.student_bias.tolist() == [1.0, 1.0, 0.0, 0.0, 0.2, 0.0]
    assert "teacher: 6 tokens, 50.0% at or below bias 0.1" in capsys.readouterr().out


def test_max_bytes_counts_utf8_bytes(tmp_path) -> None:
    corpus = tmp_path / "corpus.txt"
    # 4 paragraphs of "éé": 2 characters, 4 UTF-8 bytes each
    corpus.write_text("éé\n\néé\n\néé\n\néé", encoding="utf-8")
    # reading stops once 8 bytes are in: 2 paragraphs (counting characters would read all 4)
    batches = list(_corpus_batches([str(corpus)], max_bytes=8))
    assert batches == [["éé", "éé"]]
    # the paragraph that crosses the limit is kept whole: 5 bytes -> 2 paragraphs (8 bytes)
    assert list(_corpus_batches([str(corpus)], max_bytes=5)) == [["éé", "éé"]]
    assert list(_corpus_batches([str(corpus)], max_bytes=4)) == [["éé"]]
    # a 4-byte emoji is one character
    corpus.write_text("🙂\n\n🙂\n\n🙂", encoding="utf-8")
    assert list(_corpus_batches([str(corpus)], max_bytes=8)) == [["🙂", "🙂"]]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-bytes", "0"], "--max-bytes must be positive"),
        (["--corpus", "/nonexistent/corpus.txt"], "no such corpus file"),
    ],
)
def test_cli_user_errors_exit_2(tmp_path, capsys, extra: list[str], message: str) -> None:
    path = tmp_path / "teacher.json"
    teacher().save(str(path))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ab", encoding="utf-8")
    argv = ["--teacher", str(path), "--student", str(path), "--corpus", str(corpus)]
    argv += ["--output", str(tmp_path / "out.npz"), *extra]
    with pytest.raises(SystemExit) as exit_info:
        bias_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_ids_sharing_bytes_each_get_their_longer_tokens() -> None:
    """A byte-fallback piece ("<0x61>") and the regular piece ("a") stand for the same bytes:
    the regular one must still count the longer tokens that start with it."""
    tokenizer = trained_tokenizer("spm_bpe")  # byte-fallback pieces have the highest ids
    corpus = TRAIN_TEXT[:5]
    values = bias_of(tokenizer, corpus)
    expected = ctd_bias_by_enumeration(tokenizer, corpus)
    regular = [p for p in expected if not p.startswith("<")]
    assert {p: values[p] for p in regular} == pytest.approx({p: expected[p] for p in regular})
    assert values["t"] > 0.0  # "the", "th", ... start with "t"


def test_ids_sharing_bytes_byte_fallback_first() -> None:
    # "<0x61>" (id 0) and "a" (id 2) are both b"a". Corpus tokens: ab | a | ab -> a: 1, ab: 2.
    # a: 2 / (2 + 1); "<0x61>": never emitted but shares the 2 -> 2 / 2; b, "<0x62>": nothing
    # starts with them but they were never emitted either -> 1; ab: 0
    vocab = {"<0x61>": 0, "<0x62>": 1, "a": 2, "b": 3, "ab": 4}
    tokenizer = Tokenizer(models.BPE(vocab, [("a", "b")], byte_fallback=True))
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    ids = encode_batch(tokenizer, ["ab", "a", "ab"], add_special_tokens=False).input_ids
    assert ids.tolist() == [4, 2, 4]
    values = token_bias(token_bytes(tokenizer), [ids])
    assert values.tolist() == pytest.approx([1.0, 1.0, 2 / 3, 1.0, 0.0])
