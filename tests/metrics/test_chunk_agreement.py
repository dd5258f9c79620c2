"""ChunkAgreement against hand-computed chunk log-likelihoods."""

import math

import pytest
import torch

from ctd.metrics import ChunkAgreement

LN2 = math.log(2.0)


def test_hand_worked_agreement() -> None:
    # Three chunks, both sides skip position 0. In bits: teacher chunks -1, -2, -4;
    # student chunks -1, -4, -4.5 (tokens of -1, -3 and -4.5 bits).
    teacher_logprobs = torch.tensor([[0.0, -1.0, -2.0, -1.0, -3.0]]) * LN2
    teacher_chunk_index = torch.tensor([[-1, 0, 1, 2, 2]])
    student_logprobs = torch.tensor([[0.0, -1.0, -1.0, -3.0, -4.5]]) * LN2
    student_chunk_index = torch.tensor([[-1, 0, 1, 1, 2]])
    chunk_num_bytes = torch.tensor([[2, 3, 5]])
    metric = ChunkAgreement()
    metric.update(
        teacher_logprobs,
        student_logprobs,
        teacher_chunk_index,
        student_chunk_index,
        chunk_num_bytes,
    )
    result = metric.compute()
    differences = [0.0, 2.0, 0.5]
    assert result["mean_abs_diff_bits"].item() == pytest.approx(sum(differences) / 3)
    assert result["abs_diff_bits_per_byte"].item() == pytest.approx(2.5 / 10)
    assert result["within_one_bit"].item() == pytest.approx(2 / 3)
    teacher, student = torch.tensor([-1.0, -2.0, -4.0]), torch.tensor([-1.0, -4.0, -4.5])
    expected_pearson = torch.corrcoef(torch.stack([teacher, student]))[0, 1]
    assert result["pearson"].item() == pytest.approx(expected_pearson.item())


def test_only_chunks_valid_on_both_sides_count_and_states_merge() -> None:
    teacher_chunk_index = torch.tensor([[0, 0, 1, 2]])  # chunk 0 holds position 0
    student_chunk_index = torch.tensor([[-1, 0, 1, 2]])
    student_mask = torch.tensor([[True, True, True, False]])  # chunk 2 masked for the student
    logprobs = torch.full((1, 4), -LN2)
    parts = [ChunkAgreement(), ChunkAgreement()]
    for part in parts:
        part.update(
            logprobs,
            logprobs * 3,
            teacher_chunk_index,
            student_chunk_index,
            torch.tensor([[1, 1, 1]]),
            None,
            student_mask,
        )
    parts[0].merge_state(parts[1])
    assert int(parts[0].num_chunks) == 2  # only chunk 1, twice
    assert parts[0].compute()["mean_abs_diff_bits"].item() == pytest.approx(2.0)


def test_identical_models_agree_perfectly() -> None:
    generator = torch.Generator().manual_seed(0)
    logprobs = -torch.rand(2, 9, generator=generator, dtype=torch.float64) * 4
    chunk_index = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, -1], [-1, 0, 1, 2, 3, 4, 5, 6, 7]])
    chunk_num_bytes = torch.randint(1, 6, (2, 8), generator=generator)
    metric = ChunkAgreement()
    metric.update(logprobs, logprobs, chunk_index, chunk_index, chunk_num_bytes)
    result = metric.compute()
    assert result["mean_abs_diff_bits"].item() == 0.0
    assert result["within_one_bit"].item() == 1.0
    assert result["pearson"].item() == pytest.approx(1.0)
