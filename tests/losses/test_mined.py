"""MinED: float64 gradcheck, the identical-tokenizer limit (plain forward KL), the stored map."""

import pytest
import torch
import torch.nn.functional as F

from ctd.losses import MinEDLoss, mined_loss


def test_mined_gradcheck_mixed_kl_and_ce():
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(1, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(1, 4, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([[0, 3, 1, 2, 5]])
    student_index = torch.tensor([[-1, 0, 1, 1, 2]])  # chunks 0 and 2 are 1:1 (KL), 1 is 2:1 (CE)
    teacher_index = torch.tensor([[-1, 0, 1, 2]])
    mapping = torch.tensor([0, 6, 2, 2, 4, 1])

    def loss(s, t):
        return mined_loss(
            s,
            t,
            student_input_ids=ids,
            student_chunk_index=student_index,
            teacher_chunk_index=teacher_index,
            student_to_teacher=mapping,
            temperature=1.3,
        )

    assert torch.autograd.gradcheck(loss, (student, teacher))


def test_mined_identical_tokenizers_is_forward_kl_and_zero_on_itself():
    gen = torch.Generator().manual_seed(1)
    batch, length, vocab = 2, 6, 5
    student = torch.randn(batch, length, vocab, generator=gen, dtype=torch.float64)
    teacher = torch.randn(batch, length, vocab, generator=gen, dtype=torch.float64)
    ids = torch.randint(0, vocab, (batch, length), generator=gen)
    index = (torch.arange(length) - 1).expand(batch, length)  # token t is chunk t - 1, 0 unscored
    identity = torch.arange(vocab)
    # every chunk is 1:1, so each position t < T - 1 contributes KL(teacher_t || student_t)
    want = F.kl_div(
        F.log_softmax(student[:, :-1] / 2.0, -1),
        F.log_softmax(teacher[:, :-1] / 2.0, -1),
        log_target=True,
        reduction="sum",
    ) / (batch * (length - 1))
    same = {
        "student_input_ids": ids,
        "student_chunk_index": index,
        "teacher_chunk_index": index,
        "student_to_teacher": identity,
    }
    got = mined_loss(student, teacher, **same, temperature=2.0)
    torch.testing.assert_close(got, want)
    assert mined_loss(student, student, **same).item() == 0.0


def test_module_uses_the_map_given_at_construction_unless_forward_gets_one():
    gen = torch.Generator().manual_seed(2)
    student = torch.randn(1, 5, 6, generator=gen, dtype=torch.float64)
    teacher = torch.randn(1, 4, 7, generator=gen, dtype=torch.float64)
    sides = {
        "student_input_ids": torch.tensor([[0, 3, 1, 2, 5]]),
        "student_chunk_index": torch.tensor([[-1, 0, 1, 1, 2]]),
        "teacher_chunk_index": torch.tensor([[-1, 0, 1, 2]]),
    }
    stored, other = torch.tensor([0, 6, 2, 2, 4, 1]), torch.tensor([6, 5, 4, 3, 2, 1])
    module = MinEDLoss(temperature=1.3, student_to_teacher=stored)
    want = mined_loss(student, teacher, **sides, student_to_teacher=stored, temperature=1.3)
    torch.testing.assert_close(module(student, teacher, **sides), want)
    given = mined_loss(student, teacher, **sides, student_to_teacher=other, temperature=1.3)
    assert not torch.allclose(given, want)
    torch.testing.assert_close(module(student, teacher, **sides, student_to_teacher=other), given)
    assert "student_to_teacher" not in module.state_dict()  # built at set-up, not checkpointed
    assert module.to(torch.float16).student_to_teacher.dtype == torch.long  # index map stays long
    with pytest.raises(ValueError, match="needs a student_to_teacher vocabulary map"):
        MinEDLoss()(student, teacher, **sides)
