"""ULD, MinED, DSKD and ALM latents: references by explicit loops and limit cases.

GradMag is tested by its property on a tiny LM in tests/trainers/test_gradmag_property.py.
"""

import pytest
import torch
import torch.nn.functional as F

from ctd.losses import (
    ALMLatentsLoss,
    DSKDLoss,
    DSKDSide,
    alm_latents_loss,
    mined_loss,
    uld_loss,
)


@pytest.mark.parametrize(("student_vocab", "teacher_vocab"), [(5, 8), (8, 5), (6, 6)])
def test_uld_pairs_kth_scored_positions_by_loop(student_vocab, teacher_vocab):
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(2, 6, student_vocab, generator=gen, dtype=torch.float64)
    teacher = torch.randn(2, 4, teacher_vocab, generator=gen, dtype=torch.float64)
    vocab = max(student_vocab, teacher_vocab)
    student_mask = torch.tensor([[0, 1, 1, 0, 1, 1], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    teacher_mask = torch.tensor([[1, 0, 1, 1], [0, 1, 1, 1]], dtype=torch.bool)
    terms = []
    for b in range(2):
        s_pos = [t for t in range(6) if student_mask[b, t]]
        t_pos = [t for t in range(4) if teacher_mask[b, t]]
        for sp, tp in zip(s_pos, t_pos, strict=False):
            ps = sorted(F.softmax(student[b, sp], -1).tolist(), reverse=True)
            pt = sorted(F.softmax(teacher[b, tp], -1).tolist(), reverse=True)
            ps, pt = ps + [0.0] * (vocab - len(ps)), pt + [0.0] * (vocab - len(pt))
            terms.append(sum(abs(x - y) for x, y in zip(ps, pt, strict=True)))
    got = uld_loss(student, teacher, student_mask=student_mask, teacher_mask=teacher_mask)
    assert got.item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)


def test_uld_unmasked_and_all_masked_rows_match_the_loop():
    """Every position scored (no compaction) and a row with no scored position at all."""
    gen = torch.Generator().manual_seed(3)
    student = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    teacher = torch.randn(2, 3, 7, generator=gen, dtype=torch.float64)
    expected = []
    for b in range(2):
        for t in range(3):
            ps = sorted(F.softmax(student[b, t], -1).tolist(), reverse=True) + [0.0] * 3
            pt = sorted(F.softmax(teacher[b, t], -1).tolist(), reverse=True)
            expected.append(sum(abs(x - y) for x, y in zip(ps, pt, strict=True)))
    got = uld_loss(student, teacher)
    assert got.item() == pytest.approx(sum(expected) / 6, rel=1e-12)
    mask = torch.tensor([[True, True, True], [False, False, False]])
    got = uld_loss(student, teacher, student_mask=mask, teacher_mask=mask)
    assert got.item() == pytest.approx(sum(expected[:3]) / 3, rel=1e-12)


def test_uld_identity_and_gradcheck():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    assert uld_loss(logits, logits.detach()[..., torch.randperm(4)]).item() < 1e-12
    teacher = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: uld_loss(s, teacher), (logits,))


def test_mined_by_loop():
    gen = torch.Generator().manual_seed(2)
    student = torch.randn(1, 5, 6, generator=gen, dtype=torch.float64)
    teacher = torch.randn(1, 4, 7, generator=gen, dtype=torch.float64)
    ids = torch.tensor([[0, 3, 1, 2, 5]])
    s_index = torch.tensor([[-1, 0, 1, 1, 2]])  # chunk 0 and 2 are 1:1, chunk 1 is 2:1
    t_index = torch.tensor([[-1, 0, 1, 2]])
    mapping = torch.tensor([0, 6, 2, 2, 4, 1])
    kl0 = F.kl_div(
        F.log_softmax(student[0, 0], -1),
        F.log_softmax(teacher[0, 0, mapping], -1),
        log_target=True,
        reduction="sum",
    )
    kl2 = F.kl_div(
        F.log_softmax(student[0, 3], -1),
        F.log_softmax(teacher[0, 2, mapping], -1),
        log_target=True,
        reduction="sum",
    )
    ce = F.cross_entropy(student[0, 1:3], ids[0, 2:4], reduction="sum")
    want = (kl0 + kl2 + ce) / 4
    got = mined_loss(
        student,
        teacher,
        student_input_ids=ids,
        student_chunk_index=s_index,
        teacher_chunk_index=t_index,
        student_to_teacher=mapping,
    )
    torch.testing.assert_close(got, want)


def test_dskd_runs_trains_and_is_finite_when_masked():
    torch.manual_seed(0)
    loss_module = DSKDLoss(student_dim=4, teacher_dim=6)
    student_emb, teacher_emb = torch.randn(9, 4, requires_grad=True), torch.randn(11, 6)
    student_hidden = torch.randn(2, 5, 4, requires_grad=True)
    student = DSKDSide(
        student_hidden @ student_emb.T,
        student_hidden,
        torch.randint(0, 9, (2, 5)),
        student_emb,
        student_emb,
    )
    teacher_hidden = torch.randn(2, 7, 6)
    teacher = DSKDSide(
        teacher_hidden @ teacher_emb.T,
        teacher_hidden,
        torch.randint(0, 11, (2, 7)),
        teacher_emb,
        teacher_emb,
    )
    loss = loss_module(student, teacher)
    loss.backward()
    assert torch.isfinite(loss)
    assert loss_module.query.weight.grad is not None
    assert student_hidden.grad is not None
    masked = loss_module(student._replace(mask=torch.zeros(2, 5, dtype=torch.bool)), teacher)
    assert torch.isfinite(masked)


def test_alm_latents_by_loop_and_projection():
    gen = torch.Generator().manual_seed(3)
    teacher = torch.randn(1, 4, 3, generator=gen, dtype=torch.float64)
    student = torch.randn(1, 5, 3, generator=gen, dtype=torch.float64)
    t_index = torch.tensor([[0, 1, 1, 2]])
    s_index = torch.tensor([[0, 0, 1, -1, -1]])  # chunk 2 has no student token
    ends = [(0, 1), (2, 2)]  # (teacher last token, student last token) of chunks 0 and 1
    scale = sum(teacher[0, t] ** 2 for t, _ in ends) / 2  # per channel
    want = sum(((student[0, s] - teacher[0, t]) ** 2 / (scale + 1e-8)).mean() for t, s in ends) / 2
    chunks = {"student_chunk_index": s_index, "teacher_chunk_index": t_index}
    got = alm_latents_loss(student, teacher, **chunks)
    torch.testing.assert_close(got, want)
    same = {"student_chunk_index": t_index, "teacher_chunk_index": t_index}
    assert alm_latents_loss(teacher, teacher, **same).item() == 0.0
    module = ALMLatentsLoss(student_dim=5, teacher_dim=3).double()
    projected = module(torch.randn(1, 5, 5, dtype=torch.float64), teacher, **chunks)
    projected.backward()
    assert module.projection is not None
    assert module.projection.weight.grad is not None
    with pytest.raises(ValueError, match="pass a projection"):
        alm_latents_loss(torch.randn(1, 5, 4), teacher, **chunks)
