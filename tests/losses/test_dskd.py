"""DSKD: an independent per-position loop reference (values and gradients) and float64 gradcheck.

No identity case: DSKD is not zero for a teacher equal to the student (its CE term and the
learned projectors remain), so the loop reference carries the correctness check instead.
The t2s logits are a stop-gradient target of the KD term (as in DSKD), so the loss value
depends on the query and t2s projectors through a path autograd deliberately ignores:
gradcheck runs with the t2s projector at zero (that path is then constant) and leaves it out;
its gradient is checked against the loop reference instead.
"""

import math

import torch
import torch.nn.functional as F

from ctd.losses import DSKDProjections, DSKDSide, dskd_loss

DIMS = {"student": (4, 3), "teacher": (6, 5)}  # (hidden size, vocabulary size)


def make_case(seed, student_len=5, teacher_len=6):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    sides = {}
    for name, length in (("student", student_len), ("teacher", teacher_len)):
        width, vocab = DIMS[name]
        hidden = randn(2, length, width)
        output_embeddings = randn(vocab, width)
        sides[name] = DSKDSide(
            hidden @ output_embeddings.T,
            hidden,
            torch.randint(0, vocab, (2, length), generator=gen),
            randn(vocab, width),
            output_embeddings,
        )
    (ds, _), (dt, _) = DIMS["student"], DIMS["teacher"]
    weights = [randn(2 * dt, 2 * ds) / 2, randn(2 * dt) / 4, randn(ds, dt) / 2, randn(dt, ds) / 2]
    return sides["student"], sides["teacher"], weights


def projections(query_weight, query_bias, t2s_weight, s2t_weight):
    return DSKDProjections(
        lambda x: x @ query_weight.T + query_bias,
        lambda x: x @ t2s_weight.T,
        lambda x: x @ s2t_weight.T,
    )


def kl(p_logits, q_logits):
    return F.kl_div(F.log_softmax(q_logits, -1), F.log_softmax(p_logits, -1), log_target=True,
                    reduction="sum")  # fmt: skip


def loop_reference(student, teacher, weights, tau):
    """DSKD written position by position from the paper's description."""
    project = projections(*weights)
    batch, student_len = student.input_ids.shape
    teacher_len = teacher.input_ids.shape[1]
    student_mask = student.mask if student.mask is not None else torch.ones(batch, student_len)
    teacher_mask = teacher.mask if teacher.mask is not None else torch.ones(batch, teacher_len)

    def pair(side, b, t):  # [E(x_t); E(x_t+1)]
        return torch.cat([side.input_embeddings[side.input_ids[b, t]],
                          side.input_embeddings[side.input_ids[b, t + 1]]])  # fmt: skip

    keys = torch.stack([torch.stack([pair(teacher, b, s) for s in range(teacher_len - 1)])
                        for b in range(batch)])  # fmt: skip
    key_std = keys.std()
    hidden_std = teacher.hidden[:, :-1].std()
    target_std = teacher.output_embeddings[teacher.input_ids[:, 1:]].std()
    ce_terms, kd_terms, s2t_terms = [], [], []
    for b in range(batch):
        scores = torch.zeros(student_len - 1, teacher_len - 1, dtype=torch.float64)
        for t in range(student_len - 1):
            query = project.query(pair(student, b, t))
            for s in range(teacher_len - 1):
                scores[t, s] = query @ (keys[b, s] / key_std) / math.sqrt(keys.shape[-1])
        teacher_keys = [s for s in range(teacher_len - 1) if teacher_mask[b, s + 1]]
        student_keys = [t for t in range(student_len - 1) if student_mask[b, t + 1]]
        for t in student_keys:  # teacher -> student
            attention = F.softmax(scores[t, teacher_keys], -1)
            value = sum(
                a
                * project.teacher_to_student(
                    teacher.hidden[b, s] / hidden_std
                    + teacher.output_embeddings[teacher.input_ids[b, s + 1]] / target_std
                )
                for a, s in zip(attention, teacher_keys, strict=True)
            )
            t2s_logits = student.output_embeddings @ value
            target = student.input_ids[b, t + 1]
            ce_terms.append(F.cross_entropy(t2s_logits[None], target[None]))
            if t2s_logits.argmax() == target:
                kd_terms.append(kl(t2s_logits.detach() / tau, student.logits[b, t] / tau))
        for s in teacher_keys:  # student -> teacher
            attention = F.softmax(scores[student_keys, s], -1)
            value = sum(
                a * project.student_to_teacher(student.hidden[b, t])
                for a, t in zip(attention, student_keys, strict=True)
            )
            s2t_terms.append(kl(teacher.logits[b, s], teacher.output_embeddings @ value))
    mean = lambda terms: sum(terms) / max(len(terms), 1)  # noqa: E731
    return mean(ce_terms) + mean(kd_terms) + mean(s2t_terms), len(kd_terms)


def test_dskd_matches_a_per_position_loop():
    student, teacher, weights = make_case(0)
    student = student._replace(
        mask=torch.tensor([[1, 1, 1, 0, 1], [1, 1, 1, 1, 1]]).bool(),
        logits=student.logits.clone().requires_grad_(True),
    )
    teacher = teacher._replace(mask=torch.tensor([[1, 1, 0, 1, 1, 1], [1, 1, 1, 1, 0, 0]]).bool())
    weights = [w.requires_grad_(True) for w in weights]
    inputs = (student.logits, *weights)
    for tau in (1.0, 2.0):
        got = dskd_loss(student, teacher, projections(*weights), kd_temperature=tau)
        want, kd_count = loop_reference(student, teacher, weights, tau)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        assert kd_count > 0  # the KD term (t2s argmax correct) is exercised
        for g, w in zip(torch.autograd.grad(got, inputs), torch.autograd.grad(want, inputs),
                        strict=True):  # fmt: skip
            torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)


def test_dskd_gradcheck():
    student, teacher, weights = make_case(1, student_len=4, teacher_len=5)
    student_hidden = student.hidden.clone().requires_grad_(True)
    student_logits = student.logits.clone().requires_grad_(True)
    query_weight, query_bias, _, s2t_weight = (w.requires_grad_(True) for w in weights)
    t2s_zero = torch.zeros_like(weights[2])  # the stop-gradient KD target is then constant

    def loss(hidden, logits, query_weight, query_bias, s2t_weight):
        side = student._replace(hidden=hidden, logits=logits)
        project = projections(query_weight, query_bias, t2s_zero, s2t_weight)
        return dskd_loss(side, teacher, project, kd_temperature=1.5)

    inputs = (student_hidden, student_logits, query_weight, query_bias, s2t_weight)
    assert torch.autograd.gradcheck(loss, inputs, fast_mode=True)
