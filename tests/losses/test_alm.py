"""ALM loss against brute-force per-chunk Python loops and a hand-worked example."""

import math

import pytest
import torch

from ctd.losses import ALM_DIVERGENCES, ALMLoss, alm_loss, chunk_logprobs, gather_chunk_ends

LN2 = math.log(2.0)


def bernoulli_ce(p, q):
    return -(p * math.log(q) + (1 - p) * math.log(1 - q))


def bernoulli_kl(p, q):
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


# Reference divergences written from their definitions on Bernoulli probabilities (eps = 0).
REFERENCE = {
    "binary_ce": lambda lt, ls, tau: bernoulli_ce(math.exp(lt / tau), math.exp(ls / tau)),
    "reverse_binary_kl": lambda lt, ls, tau: bernoulli_kl(math.exp(ls / tau), math.exp(lt / tau)),
    "abs": lambda lt, ls, tau: abs(lt - ls),
    "abs_exp": lambda lt, ls, tau: abs(math.exp(lt / tau) - math.exp(ls / tau)),
    "binary_kl_temp_limit": lambda lt, ls, tau: lt - ls + lt * math.log(ls / lt),
    "joschu_k2": lambda lt, ls, tau: 0.5 * ((lt - ls) / tau) ** 2,
    "joschu_k3": lambda lt, ls, tau: math.exp((lt - ls) / tau) - 1 - (lt - ls) / tau,
}


def chunks_of(index_row):
    """chunk id -> list of token positions, by an explicit loop."""
    out = {}
    for position, chunk in enumerate(index_row):
        if chunk >= 0:
            out.setdefault(chunk, []).append(position)
    return out


def brute_force_alm(teacher, student, teacher_index, student_index, divergence, tau, **kw):
    """Per-chunk loop: validity, sums, optional space appending and merging."""
    teacher_mask, student_mask = kw.get("teacher_mask"), kw.get("student_mask")
    total, count = 0.0, 0
    for b in range(teacher.shape[0]):
        t_chunks, s_chunks = (
            chunks_of(teacher_index[b].tolist()),
            chunks_of(student_index[b].tolist()),
        )

        def scored(mask, pos, b=b):
            return pos > 0 and (mask is None or bool(mask[b, pos]))

        records = []  # (chunk id, valid, ell_t, ell_s, space_t, space_s)
        for c in sorted(set(t_chunks) | set(s_chunks)):
            tp, sp = t_chunks.get(c, []), s_chunks.get(c, [])
            valid = (
                bool(tp) and bool(sp)
                and all(scored(teacher_mask, p) for p in tp)
                and all(scored(student_mask, p) for p in sp)
            )  # fmt: skip
            lt = min(0.0, sum(float(teacher[b, p]) for p in tp))
            ls = min(0.0, sum(float(student[b, p]) for p in sp))
            st = float(kw["teacher_space"][b, max(tp)]) if "teacher_space" in kw and tp else 0.0
            ss = float(kw["student_space"][b, max(sp)]) if "student_space" in kw and sp else 0.0
            records.append([valid, lt, ls, st, ss])
        if kw.get("merge_threshold") is not None:
            merged, current = [], None
            for rec in records:
                if current is None:
                    current = list(rec)
                else:
                    current = [
                        current[0] and rec[0],
                        current[1] + rec[1],
                        current[2] + rec[2],
                        rec[3],
                        rec[4],
                    ]
                if math.exp(rec[3]) > kw["merge_threshold"]:
                    merged.append(current)
                    current = None
            if current is not None:
                merged.append(current)
            records = merged
        for valid, lt, ls, st, ss in records:
            if not valid:
                continue
            if kw.get("append_space"):
                lt, ls = lt + st, ls + ss
            total += REFERENCE[divergence](lt, ls, tau)
            count += 1
    return total / max(count, 1)


def random_case(seed, batch=3, teacher_len=9, student_len=11, chunks=5):
    gen = torch.Generator().manual_seed(seed)

    def index(length):
        rows = []
        for _ in range(batch):
            cuts = sorted(torch.randperm(length - 2, generator=gen)[: chunks - 1].add(2).tolist())
            row = [-1] * length
            bounds = [1, *cuts, length - 1]
            for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
                row[lo:hi] = [c] * (hi - lo)
            rows.append(row)  # position 0 and the last position are in no chunk
        return torch.tensor(rows)

    def logprobs(length):
        values = -torch.rand(batch, length, generator=gen, dtype=torch.float64) * 3 - 0.01
        values[:, 0] = 0.0
        return values

    space = {
        "teacher_space": -torch.rand(batch, teacher_len, generator=gen, dtype=torch.float64) * 4,
        "student_space": -torch.rand(batch, student_len, generator=gen, dtype=torch.float64) * 4,
    }
    return (
        logprobs(teacher_len),
        logprobs(student_len),
        index(teacher_len),
        index(student_len),
        space,
    )


@pytest.mark.parametrize("divergence", sorted(ALM_DIVERGENCES))
@pytest.mark.parametrize("tau", [1.0, 100.0])
def test_matches_brute_force(divergence, tau):
    teacher, student, t_index, s_index, _ = random_case(0)
    got = alm_loss(
        student, teacher, student_chunk_index=s_index, teacher_chunk_index=t_index,
        temperature=tau, divergence=divergence, epsilon=0.0,
    )  # fmt: skip
    want = brute_force_alm(teacher, student, t_index, s_index, divergence, tau)
    assert float(got) == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("merge", [False, True])
def test_space_options_match_brute_force(seed, merge):
    teacher, student, t_index, s_index, space = random_case(seed)
    teacher_mask = torch.rand(teacher.shape, generator=torch.Generator().manual_seed(seed)) > 0.1
    got = alm_loss(
        student, teacher, student_chunk_index=s_index, teacher_chunk_index=t_index,
        temperature=10.0, epsilon=0.0,
        teacher_space_logprobs=space["teacher_space"],
        student_space_logprobs=space["student_space"],
        teacher_mask=teacher_mask, append_space=True, merge_by_space_prob=merge,
        space_prob_threshold=0.3,
    )  # fmt: skip
    want = brute_force_alm(
        teacher, student, t_index, s_index, "binary_ce", 10.0, append_space=True,
        teacher_mask=teacher_mask, merge_threshold=0.3 if merge else None, **space,
    )  # fmt: skip
    assert float(got) == pytest.approx(want, rel=1e-9)


def test_hand_worked_two_chunk_example():
    # Teacher: BOS | a b | c with p(a)=p(b)=0.5, p(c)=0.5 -> chunk log-likelihoods ln .25, ln .5.
    # Student: BOS | ab | c1 c2 with p(ab)=0.5, p(c1)=p(c2)=0.5 -> ln .5, ln .25.
    # tau = 1: chunk 0 BCE(p=.25, q=.5) = ln 2 = 0.693147;
    #          chunk 1 BCE(p=.5, q=.25) = -(.5 ln .25 + .5 ln .75) = 0.836988.
    # Mean over the 2 valid chunks = 0.765068. abs: |ln .25 - ln .5| = ln 2 for both chunks.
    half = math.log(0.5)
    teacher = torch.tensor([[0.0, half, half, half]])
    student = torch.tensor([[0.0, half, half, half]])
    t_index = torch.tensor([[-1, 0, 0, 1]])
    s_index = torch.tensor([[-1, 0, 1, 1]])
    chunks = {"student_chunk_index": s_index, "teacher_chunk_index": t_index}
    bce = alm_loss(student, teacher, **chunks, temperature=1.0, epsilon=0.0)
    assert float(bce) == pytest.approx(0.765068, abs=1e-6)
    absolute = alm_loss(student, teacher, **chunks, divergence="abs")
    assert float(absolute) == pytest.approx(0.693147, abs=1e-6)


def test_validity_needs_both_sides_scored():
    half = math.log(0.5)
    teacher = torch.tensor([[0.0, half, half]])
    student = torch.tensor([[0.0, half, half]])
    # Chunk 0 holds the student's position 0 (no log-prob): tokenkit would score it, we drop it.
    t_index, s_index = torch.tensor([[-1, 0, 1]]), torch.tensor([[0, 0, 1]])
    loss = alm_loss(
        student, teacher, student_chunk_index=s_index, teacher_chunk_index=t_index, divergence="abs"
    )
    assert loss.item() == 0.0  # only chunk 1 is scored, and it matches exactly
    chunks = chunk_logprobs(student, s_index)
    assert chunks.complete.tolist() == [[False, True]]
    assert chunks.num_unscored.tolist() == [[1, 0]]


@pytest.mark.parametrize("divergence", sorted(ALM_DIVERGENCES))
def test_identity_gives_zero(divergence):
    teacher, _, t_index, _, _ = random_case(1)
    student = teacher.clone().requires_grad_(True)
    loss = alm_loss(
        student,
        teacher,
        student_chunk_index=t_index.clone(),
        teacher_chunk_index=t_index,
        divergence=divergence,
    )
    (grad,) = torch.autograd.grad(loss, student)
    if divergence != "binary_ce":  # BCE = KL + the teacher's binary entropy at identity
        assert loss.item() == pytest.approx(0.0, abs=1e-12)
    assert grad.abs().max() < 1e-9


@pytest.mark.parametrize("divergence", sorted(ALM_DIVERGENCES))
def test_gradcheck_float64(divergence):
    teacher, student, t_index, s_index, space = random_case(
        2, batch=2, teacher_len=6, student_len=7, chunks=3
    )
    leaves = [
        t.requires_grad_(True)
        for t in (teacher, student, space["teacher_space"], space["student_space"])
    ]

    def fn(t, s, ts, ss):
        return alm_loss(
            s, t, student_chunk_index=s_index, teacher_chunk_index=t_index,
            divergence=divergence, temperature=3.0,
            teacher_space_logprobs=ts, student_space_logprobs=ss, append_space=True,
        )  # fmt: skip

    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("divergence", sorted(ALM_DIVERGENCES))
def test_no_valid_chunk_gives_finite_zero(divergence):
    teacher, student, t_index, s_index, _ = random_case(3)
    student.requires_grad_(True)
    cases = [
        (t_index, s_index, {"student_mask": torch.zeros_like(student, dtype=torch.bool)}),
        (torch.full_like(t_index, -1), torch.full_like(s_index, -1), {}),
    ]
    for ti, si, kwargs in cases:
        loss = alm_loss(
            student,
            teacher,
            student_chunk_index=si,
            teacher_chunk_index=ti,
            divergence=divergence,
            **kwargs,
        )
        (grad,) = torch.autograd.grad(loss, student)
        assert loss.item() == 0.0
        assert torch.isfinite(grad).all()
        assert grad.eq(0).all()


def test_module_and_normalizer():
    teacher, student, t_index, s_index, _ = random_case(4)
    module = ALMLoss(temperature=5.0, divergence="reverse_binary_kl")
    chunks = {"student_chunk_index": s_index, "teacher_chunk_index": t_index}
    expected = alm_loss(student, teacher, **chunks, temperature=5.0, divergence="reverse_binary_kl")
    torch.testing.assert_close(module(student, teacher, **chunks), expected)
    num_valid = int(
        (
            chunk_logprobs(teacher, t_index).complete & chunk_logprobs(student, s_index).complete
        ).sum()
    )
    halved = module(student, teacher, **chunks, normalizer=2 * num_valid)
    torch.testing.assert_close(halved, expected / 2)


def test_module_stores_eos_as_space_for_the_caller():
    assert ALMLoss().eos_as_space is False
    assert ALMLoss(eos_as_space=True, append_space=True).eos_as_space is True


def test_gather_chunk_ends_takes_last_token():
    values = torch.arange(12.0).view(2, 6)
    index = torch.tensor([[-1, 0, 0, 1, 1, -1], [0, 1, 1, 1, -1, -1]])
    assert gather_chunk_ends(values, index, 3).tolist() == [[2.0, 4.0, 0.0], [6.0, 9.0, 0.0]]


def test_bad_input_errors():
    teacher, student, t_index, s_index, _ = random_case(5)
    chunks = {"student_chunk_index": s_index, "teacher_chunk_index": t_index}
    with pytest.raises(
        ValueError, match=r"batch sizes differ: student_logprobs has shape \(2, 11\)"
    ):
        alm_loss(student[:2], teacher, student_chunk_index=s_index[:2], teacher_chunk_index=t_index)
    with pytest.raises(
        ValueError, match=r"student_chunk_index \(3, 9\) and student_logprobs \(3, 11\)"
    ):
        alm_loss(student, teacher, student_chunk_index=t_index, teacher_chunk_index=t_index)
    bad = t_index.clamp_min(-2) - (t_index < 0).long()
    with pytest.raises(
        ValueError, match=r"teacher_chunk_index \(shape \(3, 9\)\) has values in \[-2"
    ):
        alm_loss(student, teacher, student_chunk_index=s_index, teacher_chunk_index=bad)
    with pytest.raises(
        ValueError,
        match=r"student_chunk_index \(shape \(3, 11\)\) has values in \[-1, 4\], outside \[-1, 2\)",
    ):
        alm_loss(student, teacher, **chunks, num_chunks=2)
    with pytest.raises(ValueError, match=r"student_logprobs \(shape \(3, 11\)\) contains NaN"):
        alm_loss(torch.full_like(student, float("nan")), teacher, **chunks)
    with pytest.raises(ValueError, match="unknown divergence 'kl'"):
        alm_loss(student, teacher, **chunks, divergence="kl")
    with pytest.raises(ValueError, match="space_logprobs"):
        alm_loss(student, teacher, **chunks, append_space=True)
