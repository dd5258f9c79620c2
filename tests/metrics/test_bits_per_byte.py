"""Bits per byte against a hand-worked example and a brute-force loop over chunks."""

import math

import pytest
import torch

from ctd.metrics import BitsPerByte, bits_per_byte, joint_valid_chunk_mask, valid_chunk_mask

LN2 = math.log(2.0)


def brute_force_sums(
    token_logprobs: torch.Tensor,
    chunk_index: torch.Tensor,
    chunk_num_bytes: torch.Tensor,
    token_mask: torch.Tensor,
) -> tuple[float, int]:
    nll_bits, num_bytes = 0.0, 0
    for row in range(chunk_index.shape[0]):
        for chunk in range(chunk_num_bytes.shape[1]):
            positions = [t for t in range(chunk_index.shape[1]) if chunk_index[row, t] == chunk]
            if not positions or chunk_num_bytes[row, chunk] == 0:
                continue
            if any(t == 0 or not token_mask[row, t] for t in positions):
                continue
            nll_bits -= sum(float(token_logprobs[row, t]) for t in positions) / LN2
            num_bytes += int(chunk_num_bytes[row, chunk])
    return nll_bits, num_bytes


def test_hand_worked_two_chunks() -> None:
    # Chunk 0: one token, p = 1/2 (1 bit), 1 byte. Chunk 1: two tokens, p = 1/4 * 1/2
    # (3 bits), 5 bytes. Position 0 is outside any chunk (a BOS token). 4 bits / 6 bytes.
    token_logprobs = torch.tensor([[0.0, math.log(0.5), math.log(0.25), math.log(0.5)]])
    chunk_index = torch.tensor([[-1, 0, 1, 1]])
    chunk_num_bytes = torch.tensor([[1, 5]])
    assert bits_per_byte(token_logprobs, chunk_index, chunk_num_bytes).item() == pytest.approx(
        4 / 6
    )


def test_chunk_at_position_zero_or_masked_is_skipped() -> None:
    token_logprobs = torch.tensor([[0.0, math.log(0.5), math.log(0.25), float("nan")]])
    chunk_index = torch.tensor([[0, 0, 1, 2]])  # chunk 0 holds position 0: no log-prob
    token_mask = torch.tensor([[True, True, True, False]])  # chunk 2's token is masked
    chunk_num_bytes = torch.tensor([[3, 2, 7]])
    assert valid_chunk_mask(chunk_index, 3, token_mask).tolist() == [[False, True, False]]
    value = bits_per_byte(token_logprobs, chunk_index, chunk_num_bytes, token_mask)
    assert value.item() == pytest.approx(2 / 2)  # only chunk 1: 2 bits over 2 bytes


def random_batch(seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    batch_size, length, max_chunks = 3, 11, 6
    chunk_index = torch.full((batch_size, length), -1)
    chunk_num_bytes = torch.zeros(batch_size, max_chunks, dtype=torch.long)
    for row in range(batch_size):
        position = int(torch.randint(0, 2, (1,), generator=generator))
        for chunk in range(int(torch.randint(1, max_chunks + 1, (1,), generator=generator))):
            width = int(torch.randint(1, 3, (1,), generator=generator))
            if position + width > length:
                break
            chunk_index[row, position : position + width] = chunk
            chunk_num_bytes[row, chunk] = int(torch.randint(1, 9, (1,), generator=generator))
            position += width
    token_logprobs = -torch.rand(batch_size, length, generator=generator, dtype=torch.float64) * 5
    token_mask = torch.rand(batch_size, length, generator=generator) > 0.15
    return token_logprobs, chunk_index, chunk_num_bytes, token_mask


@pytest.mark.parametrize("seed", range(8))
def test_matches_brute_force_loop(seed: int) -> None:
    token_logprobs, chunk_index, chunk_num_bytes, token_mask = random_batch(seed)
    nll_bits, num_bytes = brute_force_sums(token_logprobs, chunk_index, chunk_num_bytes, token_mask)
    metric = BitsPerByte()
    metric.update(token_logprobs, chunk_index, chunk_num_bytes, token_mask)
    assert int(metric.num_bytes) == num_bytes
    assert float(metric.nll_bits) == pytest.approx(nll_bits)


def test_updates_and_merged_states_accumulate_sums_not_ratios() -> None:
    batches = [random_batch(seed) for seed in range(4)]
    whole = BitsPerByte()
    parts = [BitsPerByte(), BitsPerByte()]
    expected_bits, expected_bytes = 0.0, 0
    for number, batch in enumerate(batches):
        whole.update(*batch)
        parts[number % 2].update(*batch)
        nll_bits, num_bytes = brute_force_sums(*batch)
        expected_bits, expected_bytes = expected_bits + nll_bits, expected_bytes + num_bytes
    parts[0].merge_state(parts[1])
    assert whole.compute().item() == pytest.approx(expected_bits / expected_bytes)
    assert parts[0].compute().item() == pytest.approx(expected_bits / expected_bytes)


def test_joint_mask_scores_teacher_and_student_on_the_same_bytes() -> None:
    # Teacher has a BOS at position 0; the student's first chunk starts at position 0.
    teacher_chunk_index = torch.tensor([[-1, 0, 1, 1]])
    student_chunk_index = torch.tensor([[0, 1, 1, -1]])
    chunk_num_bytes = torch.tensor([[4, 6]])
    joint = joint_valid_chunk_mask(teacher_chunk_index, student_chunk_index, chunk_num_bytes)
    assert joint.tolist() == [[False, True]]
    teacher, student = BitsPerByte(), BitsPerByte()
    teacher.update(torch.full((1, 4), -LN2), teacher_chunk_index, chunk_num_bytes, None, joint)
    student.update(torch.full((1, 4), -LN2), student_chunk_index, chunk_num_bytes, None, joint)
    assert int(teacher.num_bytes) == int(student.num_bytes) == 6
    assert teacher.compute().item() == pytest.approx(2 / 6)


def test_empty_metric_is_nan_and_dtypes() -> None:
    metric = BitsPerByte()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert torch.isnan(metric.compute())
    metric.update(
        torch.zeros(2, 3, dtype=torch.bfloat16), torch.full((2, 3), -1), torch.zeros(2, 0)
    )
    assert metric.nll_bits.dtype == torch.float64
    assert torch.isnan(metric.compute())
