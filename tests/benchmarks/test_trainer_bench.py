"""One training step of ALM self-distillation vs one step of plain SFT, same student, same batch.

Target (issue: trainer): ALM step time at most 1.5x the SFT step, measured side by side in one
run. The figures go to BENCHMARKS.md; a missed target warns rather than fails (timings on a
shared 2-core machine are noisy), and `--benchmark-disable` runs a tiny smoke version.
"""

from __future__ import annotations

import statistics
import time
import warnings

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ctd.alignment import CrossTokenizerBatch
from ctd.losses import LOSSES
from ctd.trainers.transfer import DistillationModule
from ctd.trainers.vocab import SideVocab

REAL = {"width": 576, "layers": 6, "teacher_vocab": 49152, "batch": 4, "bytes": 512}
SMOKE = {"width": 32, "layers": 1, "teacher_vocab": 500, "batch": 2, "bytes": 32}


def _llama(vocab: int, width: int, layers: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=width,
        intermediate_size=width * 8 // 3,
        num_hidden_layers=layers,
        num_attention_heads=max(1, width // 64),
        num_key_value_heads=max(1, width // 192),
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def _batch(shape: dict[str, int]) -> CrossTokenizerBatch:
    """Bytes on the student side; teacher tokens of 4 bytes each; one chunk per teacher token."""
    batch, num_bytes = shape["batch"], shape["bytes"]
    teacher_len = num_bytes // 4
    generator = torch.Generator().manual_seed(0)
    student_ids = torch.randint(0, 256, (batch, num_bytes), generator=generator)
    teacher_ids = torch.randint(
        0, shape["teacher_vocab"], (batch, teacher_len), generator=generator
    )
    teacher_chunk = torch.arange(teacher_len).expand(batch, -1).clone()
    student_chunk = (torch.arange(num_bytes) // 4).expand(batch, -1).clone()
    last_student = torch.arange(3, num_bytes, 4).expand(batch, -1).clone()
    return CrossTokenizerBatch(
        teacher_input_ids=teacher_ids,
        teacher_attention_mask=torch.ones_like(teacher_ids),
        teacher_loss_mask=torch.ones_like(teacher_ids, dtype=torch.bool),
        teacher_chunk_index=teacher_chunk,
        student_input_ids=student_ids,
        student_attention_mask=torch.ones_like(student_ids),
        student_loss_mask=torch.ones_like(student_ids, dtype=torch.bool),
        student_chunk_index=student_chunk,
        num_chunks=torch.full((batch,), teacher_len),
        chunk_num_bytes=torch.full((batch, teacher_len), 4),
        teacher_chunk_last_token=teacher_chunk.clone(),
        student_chunk_last_token=last_student,
    )


def _module(loss: str, teacher: LlamaForCausalLM, student: LlamaForCausalLM) -> DistillationModule:
    def vocab(model: LlamaForCausalLM) -> SideVocab:
        rows = model.get_input_embeddings().weight.shape[0]
        return SideVocab(space_token_mask=torch.zeros(rows, dtype=torch.bool), eos_token_id=None)

    return DistillationModule(
        teacher, student, vocab(teacher), vocab(student), {loss: LOSSES[loss]()}, {loss: 1.0}
    )


def _step(module: DistillationModule, batch: CrossTokenizerBatch) -> float:
    start = time.perf_counter()
    loss = module.training_step(batch, 0)
    loss.backward()
    module.student.zero_grad(set_to_none=True)
    return time.perf_counter() - start


@pytest.mark.benchmark
def test_alm_step_vs_sft_step(benchmark) -> None:  # type: ignore[no-untyped-def]
    shape = SMOKE if benchmark.disabled else REAL
    torch.manual_seed(0)
    teacher = _llama(shape["teacher_vocab"], shape["width"], shape["layers"]).eval()
    student = _llama(300, shape["width"], shape["layers"])
    batch = _batch(shape)
    alm, sft = _module("alm", teacher, student), _module("sft", teacher, student)
    for module in (alm, sft):
        module.log = module.log_dict = lambda *args, **kwargs: None  # type: ignore[method-assign]
    benchmark.pedantic(_step, args=(alm, batch), rounds=1, iterations=1)
    if benchmark.disabled:
        return
    times: dict[str, list[float]] = {"alm": [], "sft": []}
    for _ in range(3):  # interleaved, medians
        times["alm"].append(_step(alm, batch))
        times["sft"].append(_step(sft, batch))
    ratio = statistics.median(times["alm"]) / statistics.median(times["sft"])
    figures = {k: round(statistics.median(v), 3) for k, v in times.items()}
    figures["alm/sft"] = round(ratio, 3)
    benchmark.extra_info.update(figures)
    print("trainer step", shape, figures)
    if ratio > 1.5:
        warnings.warn(f"ALM step is {ratio:.2f}x the SFT step (target <= 1.5x)", stacklevel=1)
