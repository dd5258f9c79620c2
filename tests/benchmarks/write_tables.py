#!/usr/bin/env python3
"""Write the marked tables of BENCHMARKS.md from the committed figures in tests/benchmarks/figures/.

    .venv/bin/python tests/benchmarks/write_tables.py write            # regenerate the tables
    .venv/bin/python tests/benchmarks/write_tables.py write --check    # exit 1 if out of date

A benchmark run (`make bench`, or the pytest command a table names) writes
`figures/NAME.json` through `bench_helpers.BenchRun.save`: its figures and a stamp (command,
machine, date, load average). Each `<!-- table: NAME -->` ... `<!-- end table -->` block of
BENCHMARKS.md is replaced by the table NAME below, made from `figures/NAME.json`, preceded by
that stamp. Ratios are computed here from the raw medians. `make bench` runs the benchmarks and
then this script; tests/test_benchmarks_md.py checks that the page matches the committed figures.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[2]
FIGURES = Path(__file__).resolve().parent / "figures"
PAGE = ROOT / "BENCHMARKS.md"
sys.path.insert(0, str(ROOT / "results"))

import markdown_tables  # noqa: E402


def _load(name: str) -> dict[str, Any]:
    """One committed figures file: {"stamp": ..., "figures": ...}."""
    return json.loads((FIGURES / f"{name}.json").read_text())  # type: ignore[no-any-return]


def stamp_line(stamp: dict[str, Any]) -> str:
    """Command, machine, date and load of one run, as one paragraph."""
    machine = stamp["machine"]
    threads = machine["torch_threads"]
    gpu = f", GPU {machine['gpu']}" if machine.get("gpu") else ", no GPU"
    allowed = machine.get("cpus_allowed") or machine["cpu_count"]
    pinned = f" (run pinned to {allowed})" if allowed < machine["cpu_count"] else ""
    load_start, load_end = stamp["load_average"]
    interval = _interval(stamp["started"], stamp["finished"])
    return (
        f"Command: `{stamp['command']}`. Machine: {machine['cpu']}, {machine['cpu_count']} CPUs"
        f"{pinned}{gpu}, {machine['platform']}, torch {machine['torch']} ({threads} "
        f"thread{'s' if threads != 1 else ''}). Run: {interval}, "
        f"`uptime` load average {load_start} at the start, {load_end} at the end."
    )


def _interval(started: str, finished: str) -> str:
    """'2026-12-01 16:01-16:02 UTC' from two 'YYYY-MM-DD HH:MM UTC' stamps of the same day."""
    day, start, _ = started.split()
    end_day, end, _ = finished.split()
    return f"{day} {start}-{end} UTC" if day == end_day else f"{started} to {finished}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _with_stamp(name: str, render: Callable[[dict[str, Any]], str]) -> str:
    data = _load(name)
    return stamp_line(data["stamp"]) + "\n\n" + render(data["figures"])


def _seconds(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def gold_alignment(figures: dict[str, Any]) -> str:
    """GOLD's byte-offset alignment vs ctd's collator on the same texts."""
    texts = f"{figures['texts']:,}"
    rows = [
        [
            "GOLD: two `encode_with_byte_offsets` + per-row two-pointer merge",
            _seconds(figures["gold_s"]),
            f"**{figures['gold_s'] / figures['ctd_s']:.2f}x ctd**",
        ],
        [
            "ctd: `CrossTokenizerCollator` (encodes, exact byte spans, chunks, padded tensors)",
            _seconds(figures["ctd_s"]),
            "1",
        ],
    ]
    table = _table(["medians of 5", f"wall s ({texts} texts)", "ratio"], rows)
    agreeing = f"{figures['rows_with_equal_chunk_counts']:,} of {texts}"
    return table + f"\n\nRows where both find the same number of chunks: {agreeing}."


def alignment(figures: dict[str, Any]) -> str:
    """The collator's own work vs encode_batch and vs the two per-token Python loops."""
    settings = figures["settings"]
    plain, template = settings["plain"], settings["template"]

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> list[str]:
        return [label, cell(plain), cell(template)]

    rows = [
        row("the two `encode_batch` calls incl. `.ids`", lambda f: f"{f['encode_batch_s']:.3g} s"),
        row(
            "overhead (template, spans, verification, chunks, padding)",
            lambda f: f"{f['overhead_s']:.3g} s",
        ),
        row(
            "overhead / encode_batch (target <= 10%)",
            lambda f: f"**{f['overhead_s'] / f['encode_batch_s']:.1%}**",
        ),
        row(
            "**table loop (baseline) / overhead (target >= 20x)**",
            lambda f: (
                f"**{f['table_loop_baseline_s'] / f['overhead_s']:.1f}x** "
                f"({f['table_loop_baseline_s']:.3g} s)"
            ),
        ),
        row(
            "old `id_to_token` loop / overhead",
            lambda f: (
                f"{f['old_id_to_token_loop_s'] / f['overhead_s']:.1f}x "
                f"({f['old_id_to_token_loop_s']:.3g} s)"
            ),
        ),
        row(
            "old loop / table loop",
            lambda f: f"{f['old_id_to_token_loop_s'] / f['table_loop_baseline_s']:.2f}",
        ),
    ]
    header = [f"medians of {figures['repeats']}", "plain", "template (`ctd fit`)"]
    tokens = plain["tokens"]
    tables_s = plain["byte_length_tables_once_s"]
    return _table(header, rows) + (
        f"\n\n{plain['texts']:,} texts, {tokens:,} tokens over both sides (plain); the "
        f"per-id byte-length tables of the baseline took {tables_s:.3g} s to build, once."
    )


def align_many(figures: dict[str, Any]) -> str:
    """One 3-way alignment vs the two pairwise ones it replaces."""
    names = {"plain": "plain", "template": "template (BOS/EOS, paired specials)"}
    rows = []
    for key, label in names.items():
        setting = figures["settings"][key]
        three, pairwise = setting["three_way_s"], setting["two_pairwise_s"]
        rows.append([label, f"{three:.3g} s", f"{pairwise:.3g} s", f"**{three / pairwise:.2f}**"])
    header = [
        f"medians of {figures['repeats']}",
        "3-way",
        "2 pairwise",
        "ratio 3-way / 2 pairwise",
    ]
    return _table(header, rows)


def gold_step(figures: dict[str, Any]) -> str:
    """One distillation step: GOLD's ULD vs ctd's ALM and ULD, time and peak memory."""
    names = {
        "gold_uld": "GOLD `ULDLoss` step (full logits both sides)",
        "ctd_alm": "ctd ALM step (`DistillationModule`, `alm`)",
        "ctd_uld": "ctd ULD step (`DistillationModule`, `uld`)",
    }
    gold_wall, gold_peak = figures["gold_uld_s"], figures["gold_uld_peak_mib"]
    rows = []
    for key, label in names.items():
        wall, peak = figures[f"{key}_s"], figures[f"{key}_peak_mib"]
        rows.append(
            [
                label,
                _seconds(wall),
                _seconds(figures[f"{key}_cpu_s"]),
                f"{peak:,}",
                "1" if key == "gold_uld" else f"**{gold_wall / wall:.2f}**",
                "1" if key == "gold_uld" else f"**{gold_peak / peak:.2f}**",
            ]
        )
    header = [
        f"B = {figures['batch']}, {figures['student_tokens']} student / "
        f"{figures['teacher_tokens']} teacher tokens, medians of {figures['rounds']}",
        "wall s",
        "CPU s",
        "peak extra RSS, MiB",
        "GOLD / this, wall",
        "GOLD / this, memory",
    ]
    losses = ", ".join(f"{name} {value}" for name, value in figures["losses"].items())
    return _table(header, rows) + f"\n\nLoss values of the first step: {losses}."


def gold_memory(figures: dict[str, Any]) -> str:
    """Peak extra memory (and, in runs since 2026-12-01 19:30, the CPU time) of the loss alone
    as vocabulary and length grow; a point stopped at the run's CPU limit shows what it had
    reached by then (a lower bound)."""
    header = ["V", "T", "GOLD ULD peak extra", "ctd ALM peak extra", "GOLD / ctd, memory"]
    timed = any(
        "gold_uld_cpu_s" in row or "gold_uld_stopped_cpu_s" in row for row in figures["rows"]
    )
    if timed:
        header += ["GOLD CPU s", "ctd CPU s", "GOLD / ctd, CPU"]
    rows = []
    for row in figures["rows"]:
        gold, ctd = _memory_point(row, "gold_uld"), _memory_point(row, "ctd_alm")
        bound = ">= " if gold.stopped else ""
        cells = [
            f"{row['vocab']:,}",
            str(row["length"]),
            gold.memory_cell,
            ctd.memory_cell,
            f"**{bound}{gold.mib / max(ctd.mib, 1e-9):.1f}**",
        ]
        if timed:
            cpu_bound = "> " if gold.stopped else ""
            ratio = gold.cpu_s / max(ctd.cpu_s, 1e-9)
            cells += [gold.cpu_cell, ctd.cpu_cell, f"{cpu_bound}{ratio:.1f}"]
        rows.append(cells)
    return _table(header, rows)


class _MemoryPoint(NamedTuple):
    """One side of a gold_memory row: its cells and values (a lower bound when stopped)."""

    memory_cell: str
    mib: float
    cpu_cell: str
    cpu_s: float
    stopped: bool


def _memory_point(row: dict[str, Any], kind: str) -> _MemoryPoint:
    if f"{kind}_stopped_cpu_s" in row:
        mib, cpu = row[f"{kind}_mib_at_stop"], row[f"{kind}_stopped_cpu_s"]
        return _MemoryPoint(
            f">= {mib:,} MiB (stopped)", mib, f"> {cpu:,} (not finished)", cpu, True
        )
    mib, cpu = row[f"{kind}_mib"], row.get(f"{kind}_cpu_s", float("nan"))
    return _MemoryPoint(f"{mib:,} MiB", mib, _seconds(cpu), cpu, False)


def _step_rows(figures: dict[str, Any], names: dict[str, str], baseline: str) -> list[list[str]]:
    rows = []
    for key, label in names.items():
        wall, cpu = figures[f"{key}_s"], figures[f"{key}_cpu_s"]
        is_baseline = key == baseline
        rows.append(
            [
                f"**{label}** (the baseline)" if is_baseline else label,
                _seconds(wall),
                _seconds(cpu),
                "" if is_baseline else f"{wall / figures[f'{baseline}_s']:.2f}",
                "" if is_baseline else f"{cpu / figures[f'{baseline}_cpu_s']:.2f}",
            ]
        )
    return rows


STEP_HEADER = ["medians of 5", "wall s", "CPU s", "/ SFT baseline, wall", "/ SFT baseline, CPU"]
SFT_NAMES = {"sft_hf": "SFT, HF `labels=`", "sft_chunked": "SFT, chunked head"}


def teacher_cache(figures: dict[str, Any]) -> str:
    """Cached-teacher ALM step vs the student-only SFT baseline, and the cache's size."""
    names = {
        "alm_cached": "ALM, teacher from the cache",
        "alm_live": "ALM, live teacher",
        **SFT_NAMES,
    }
    table = _table(STEP_HEADER, _step_rows(figures, names, figures["sft_baseline"]))
    size = figures["cache_bytes_per_token"]
    ratio = figures["distillkit_bytes_per_token"] / size
    return table + (
        f"\n\nCache on disk: {size} bytes per teacher token (this benchmark's one-shard cache, "
        f"its header spread over the batch's tokens); DistillKit's top-k logits: "
        f"~{figures['distillkit_bytes_per_token']} ({ratio:.0f}x more)."
    )


def trainer_step(figures: dict[str, Any]) -> str:
    """ALM self-distillation step vs the student-only SFT baselines, and the trainer's SFT."""
    names = {
        "alm": "ALM step (`DistillationModule`, `alm`)",
        **SFT_NAMES,
        "sft_module": "`DistillationModule` with `sft` (the trainer's SFT step, no teacher)",
    }
    shape = figures["shape"]
    table = _table(STEP_HEADER, _step_rows(figures, names, figures["sft_baseline"]))
    return table + (
        f"\n\nB = {shape['batch']}, each row {shape['bytes']} student bytes and "
        f"{shape['bytes'] // 4} teacher tokens; d = {shape['width']}, {shape['layers']} layers, "
        f"teacher vocabulary {shape['teacher_vocab']:,}."
    )


def losses(figures: dict[str, Any]) -> str:
    """Memory-bounded loss vs the naive (B, T, V) version: peak extra memory, wall and CPU."""
    ratio = figures["chunked_peak_mib"] / figures["naive_peak_mib"]
    row = [
        ", ".join(f"{value:,}" for value in figures["shape"]),
        f"{figures['naive_peak_mib']:,} MiB",
        f"{figures['chunked_peak_mib']:,} MiB",
        f"**{ratio:.3f}**",
    ]
    for clock in ("s", "cpu_s"):
        naive, chunked = figures[f"naive_{clock}"], figures[f"chunked_{clock}"]
        row += [_seconds(naive), _seconds(chunked), f"**{chunked / naive:.2f}**"]
    header = [
        "shape (B, T, d, V)",
        "naive peak extra",
        "chunked peak extra",
        "chunked / naive (<= 0.10)",
        "naive wall s",
        "chunked wall s",
        "chunked / naive (<= 1.3)",
        "naive CPU s",
        "chunked CPU s",
        "chunked / naive, CPU",
    ]
    return f"Medians of {figures['rounds']}.\n\n" + _table(header, [row])


def losses_kept(figures: dict[str, Any]) -> str:
    """ALM's head at a CPU step's size: logits kept for backward against recomputed and naive."""
    variants = ("naive", "recompute", "kept")
    row = [", ".join(f"{value:,}" for value in figures["shape"])]
    row += [f"{figures[f'{name}_peak_mib']:,} MiB" for name in variants]
    for clock in ("s", "cpu_s"):
        row += [_seconds(figures[f"{name}_{clock}"]) for name in variants]
        kept = figures[f"kept_{clock}"]
        row += [
            f"**{kept / figures[f'recompute_{clock}']:.2f}**",
            f"{kept / figures[f'naive_{clock}']:.2f}",
        ]
    header = ["shape (B, T, d, V)"] + [f"{name} peak extra" for name in variants]
    for clock in ("wall s", "CPU s"):
        header += [f"{name} {clock}" for name in variants]
        header += [f"kept / recompute, {clock}", f"kept / naive, {clock}"]
    return f"Medians of {figures['rounds']}.\n\n" + _table(header, [row])


def import_time(figures: dict[str, Any]) -> str:
    """`import ctd` in process and in a fresh interpreter."""
    rows = [
        [
            f"{figures['import_ctd_in_process_s']:.3f} s",
            f"{figures['process_with_import_s']:.3f} s",
            f"{figures['bare_process_s']:.3f} s",
            f"{figures['extra_s']:.3f} s",
        ]
    ]
    header = [
        f"medians of {figures['rounds']}: `import ctd`, in process",
        "interpreter + `import ctd`",
        "bare interpreter",
        "extra per process",
    ]
    return _table(header, rows)


def vocab_map(figures: dict[str, Any]) -> str:
    """MinED map: ctd's length-windowed search vs an all-pairs rapidfuzz cdist, same queries."""
    names = {
        "windowed": "ctd `nearest_by_edit_distance` (length-windowed search)",
        "all_pairs": "all pairs: `rapidfuzz.process.cdist` + first argmin",
    }
    rows = []
    for key, label in names.items():
        wall, cpu = figures[f"{key}_s"], figures[f"{key}_cpu_s"]
        ratios = [f"**{wall / figures['windowed_s']:.2f}**"]
        ratios.append(f"**{cpu / figures['windowed_cpu_s']:.2f}**")
        rows.append(
            [label, _seconds(wall), _seconds(cpu), *(["1", "1"] if key == "windowed" else ratios)]
        )
    header = [
        f"{figures['queries']:,} queries, medians of {figures['rounds']}",
        "wall s",
        "CPU s",
        "/ windowed, wall",
        "/ windowed, CPU",
    ]
    return _table(header, rows) + (
        f"\n\nQueries: student tokens with no exact teacher match "
        f"({figures['student_ids_without_exact_match']:,} such ids), against "
        f"{figures['teacher_text_tokens']:,} teacher text tokens; both give the same ids. "
        f"The whole map ({figures['student_vocab']:,} x {figures['teacher_vocab']:,} ids, "
        f"`mined_vocab_map`): {_seconds(figures['whole_map_s'])} s wall, "
        f"{_seconds(figures['whole_map_cpu_s'])} s CPU; "
        f"{figures['ids_mapped_to_identical_bytes']:,} student ids map to identical bytes."
    )


def transplant(figures: dict[str, Any]) -> str:
    """OMP per new row: ctd screened and exact vs mergekit's `batch_omp` vs a numpy loop."""
    wall, cpu = figures["seconds_per_row"], figures["cpu_seconds_per_row"]
    names = {
        "ctd_screened_128": "ctd, screened to 128 candidates (the default)",
        "ctd_exact": "ctd, exact search",
        "mergekit_batch_omp_exact": "mergekit `batch_omp`, exact search",
        "numpy_loop": "numpy loop, one token at a time",
    }
    mergekit = cpu.get("mergekit_batch_omp_exact")
    rows = []
    for key, label in names.items():
        if key not in cpu:
            continue
        cells = [label, str(figures["rows"][key]), f"{wall[key]:.3g}", f"{cpu[key]:.3g}"]
        minutes = cpu[key] * figures["new_gemma3_rows"] / 60
        cells.append(f"{minutes:,.0f}" if minutes >= 100 else f"{minutes:.1f}")
        if mergekit is not None:
            cells.append(_versus(mergekit, cpu[key], key == "mergekit_batch_omp_exact"))
        rows.append(cells)
    header = [
        f"method, medians of {figures['rounds']}",
        "rows timed",
        "wall s per row",
        "CPU s per row",
        "projected CPU min for Gemma-3",
    ]
    if mergekit is not None:
        header.append(f"vs mergekit {figures['mergekit_version']}, CPU")
    absent = "" if mergekit is not None else " mergekit was absent: its row was not measured."
    return _table(header, rows) + (
        f"\n\nd = {figures['width']}, {figures['anchors']:,} anchors, k = {figures['k']}; "
        f"projections = CPU s per row x {figures['new_gemma3_rows']:,} new Gemma-3 rows, one "
        f"thread. Peak RSS of the run: {figures['peak_rss_mib']:,} MiB.{absent}"
    )


def _versus(reference_s: float, seconds: float, is_reference: bool) -> str:
    """'40x faster' / '2.1x slower' than the reference, '1' for the reference itself."""
    if is_reference:
        return "1"
    ratio = reference_s / seconds
    return f"**{ratio:.2g}x faster**" if ratio >= 1 else f"{1 / ratio:.2g}x slower"


def _runs(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def _met(value: float, target: float, shown: str) -> str:
    return f"<= {shown} ({'met' if value <= target else 'missed'})"


def _overhead_ratio(figures: dict[str, Any], label: str, target: float) -> str:
    """One row, wall and CPU, of a ratio measured in 5 runs (target judged on CPU time)."""
    header = ["medians of 5 runs (each run's ratio)", "wall", "CPU", "target (CPU)"]
    row = [label]
    for clock in ("wall", "cpu"):
        row.append(f"**{figures[f'{clock}_ratio']:.3f}** ({_runs(figures[f'{clock}_runs'])})")
    row.append(_met(figures["cpu_ratio"], target, f"{target:g}"))
    return _table(header, [row])


def specdec_identical(figures: dict[str, Any]) -> str:
    """Speculative decoding with an identical drafter vs the calls it should cost."""
    table = _overhead_ratio(figures, "identical drafter: run / expected calls", 1.1)
    return table + (
        f"\n\nRandom Llama, vocabulary {figures['vocab']:,}, d = {figures['hidden']}, "
        f"{figures['layers']} layers; gamma {figures['gamma']}, {figures['blocks']} blocks, "
        "every draft accepted."
    )


def specdec_tli(figures: dict[str, Any]) -> str:
    """Cross-tokenizer (TLI) conversion time as a share of the drafter's time."""
    rows = []
    for key, label in (("greedy", "greedy (T = 0)"), ("sampling", "sampling (T = 1)")):
        share, shares = figures[key]["share"], figures[key]["shares"]
        per_seed = ", ".join(f"{value:.3%}" for value in shares)
        rows.append([label, f"**{share:.3%}**", per_seed, _met(share, 0.10, "10%")])
    header = [
        f"median of {figures['seeds']} seeds",
        "conversion / drafter time",
        "per seed",
        "target",
    ]
    shared, drafter = figures["shared_drafter_ids"], figures["drafter_vocab"]
    return _table(header, rows) + (
        f"\n\ngamma {figures['gamma']}, {figures['new_tokens']} new tokens; SmolLM2 -> Gemma 3 "
        f"shares {shared:,} of SmolLM2's {drafter:,} tokens ({shared / drafter:.1%}); the target "
        f"vocabulary has {figures['target_vocab']:,} ids."
    )


def ensemble_lockstep(figures: dict[str, Any]) -> str:
    """Lockstep ensemble generation vs the sum of its members generating alone."""
    table = _overhead_ratio(figures, "lockstep ensemble / sum of members", 1.1)
    return table + (
        f"\n\nTwo random Llamas, vocabulary {figures['vocab']:,}, d = {figures['hidden']}, "
        f"{figures['layers']} layers; greedy, {figures['new_tokens']} new tokens."
    )


def ensemble_bytes(figures: dict[str, Any]) -> str:
    """Byte level: ms per byte of the ensemble, each `ByteLM`, and token-level scoring."""
    per_byte = 1000 / figures["num_bytes"]
    names = {"smollm2": "SmolLM2-tokenizer member", "gemma3": "Gemma-3-tokenizer member"}
    labels = {"ensemble": "byte-level ensemble (both members)"}
    for index, member in enumerate(figures["members"]):
        labels[f"bytelm_{index}"] = f"`ByteLM` alone, {names[member]}"
        labels[f"before_tree_{index}"] = f"`ByteLM` before the token tree, {names[member]}"
        labels[f"tokens_{index}"] = f"token-level scoring, {names[member]}"
    rows = [
        [label, f"{figures[key] * per_byte:.1f}", f"{figures[f'{key}_cpu'] * per_byte:.1f}"]
        for key, label in labels.items()
        if key in figures
    ]
    header = [
        f"per byte, beam {figures['beam']}, {figures['num_bytes']} bytes",
        "wall ms",
        "CPU ms",
    ]
    members_cpu = sum(figures[f"bytelm_{i}_cpu"] for i in range(len(figures["members"])))
    notes = [f"ensemble / sum of its `ByteLM`s, CPU: {figures['ensemble_cpu'] / members_cpu:.2f}"]
    short = {"smollm2": "SmolLM2", "gemma3": "Gemma-3"}
    for index, key in enumerate(figures["members"]):
        member = short.get(key, key)
        ratio = figures[f"bytelm_{index}_cpu"] / figures[f"tokens_{index}_cpu"]
        notes.append(f"{member} `ByteLM` / its token-level scoring, CPU: {ratio:.1f}x")
        if f"before_tree_{index}" in figures:
            speedup = figures[f"before_tree_{index}_cpu"] / figures[f"bytelm_{index}_cpu"]
            gap = figures["before_tree_abs_logprob_gap"][index]
            notes.append(
                f"{member} before / after the token tree, CPU: {speedup:.2f}x "
                f"(|log-prob difference| {gap:.1e})"
            )
    return _table(header, rows) + (
        f"\n\nRandom Llamas, d = {figures['hidden']}, {figures['layers']} layers, with the "
        f"real tokenizers. {'; '.join(notes)}."
    )


def byte_lm_tree(figures: dict[str, Any]) -> str:
    """`ByteLM` on real models before and after the token tree."""
    names = {"smollm2": "SmolLM2-135M-Instruct (49k)", "gemma3": "Gemma-3-270m (262k)"}
    rows = []
    for member, row in figures["members"].items():
        before, after = row["before_tree"], row["tree"]
        rows.append(
            [
                names.get(member, member),
                f"{before['bpb']:.6f} / {after['bpb']:.6f}",
                f"{before['forward_calls']} / {after['forward_calls']}",
                f"{before['seconds']:.1f} / {after['seconds']:.1f}",
                f"{before['cpu_seconds']:.1f} / {after['cpu_seconds']:.1f}",
                f"**{before['cpu_seconds'] / after['cpu_seconds']:.2f}x**",
            ]
        )
    header = [
        f"member ({figures['num_bytes']} bytes, beam {figures['beam']}, medians of "
        f"{figures['rounds']})",
        "bits per byte, before / after",
        "forward passes, before / after",
        "wall s, before / after",
        "CPU s, before / after",
        "speed-up, CPU",
    ]
    return _table(header, rows)


def byte_mc_lanes(figures: dict[str, Any]) -> str:
    """Byte-level multiple choice: each request alone vs lanes stepped together."""
    labels = {
        "one_at_a_time": "one request at a time (`max_lanes=1`)",
        "lanes": "lanes stepped together (`max_lanes=32`)",
    }
    layouts = figures["layouts"]
    rows = [
        [
            label,
            " / ".join(str(calls) for calls in layouts[key]["forward_calls"]),
            f"{layouts[key]['seconds']:.1f}",
            f"{layouts[key]['cpu_seconds']:.1f}",
            f"{layouts[key]['cpu_seconds'] / figures['questions']:.1f}",
        ]
        for key, label in labels.items()
    ]
    speedup = layouts["one_at_a_time"]["cpu_seconds"] / layouts["lanes"]["cpu_seconds"]
    header = [
        f"{figures['questions']} ARC-Easy questions, {figures['requests']} requests, "
        f"{figures['continuation_bytes']} continuation bytes, beam {figures['beam']}, medians of "
        f"{figures['rounds']}",
        "forward passes per member",
        "wall s",
        "CPU s",
        "CPU s per question",
    ]
    return _table(header, rows) + (
        f"\n\nMembers: {', '.join(figures['members'])}. Lanes / one at a time, CPU: "
        f"**{speedup:.2f}x** faster; the largest difference of a request's log-prob between "
        f"the two: {figures['max_abs_logprob_difference']:.1e} nats."
    )


def genlm_bytes(figures: dict[str, Any]) -> str:
    """ctd's `ByteLM` vs genlm-bytes on the same model, bytes and beam."""
    num_bytes = sum(row["num_bytes"] for row in figures["texts"])
    labels = {
        "ctd": f"ctd `ByteLM` (beam_width {figures['beam']})",
        "genlm": f"genlm-bytes `ByteBeamState` (K {figures['beam']}, heal)",
    }
    rows = []
    for key, label in labels.items():
        side = figures[key]
        rows.append(
            [
                label,
                f"{side['bpb']:.6f}",
                f"{side['seconds']:.1f}",
                f"{side['cpu_seconds']:.1f}",
                f"{num_bytes / side['seconds']:.2f}",
                "1"
                if key == "ctd"
                else f"**{side['cpu_seconds'] / figures['ctd']['cpu_seconds']:.2f}**",
            ]
        )
    header = ["", "bits per byte", "wall s", "CPU s", "bytes/s (wall)", "/ ctd, CPU"]
    versions = ", ".join(f"{name} {value}" for name, value in figures["versions"].items())
    gap = abs(figures["ctd"]["bpb"] - figures["genlm"]["bpb"])
    return _table(header, rows) + (
        f"\n\n{figures['model']}, {len(figures['texts'])} texts, {num_bytes} bytes in all; "
        f"|bits-per-byte difference| {gap:.1e}; {versions}."
    )


def evaluate_packing(figures: dict[str, Any]) -> str:
    """`ctd evaluate`'s scorer: shared contexts packed into one row vs one row per request."""
    header = [
        f"task, first {figures['questions_per_task']} questions",
        "requests / packed rows",
        "positions: one row each / in packed rows",
        "one row each: CPU s",
        "packed: CPU s",
        "one row each / packed, CPU",
        "wall",
    ]
    rows = []
    for task, values in figures["tasks"].items():
        rows.append(
            [
                task,
                f"{values['requests']} / {values['rows']}",
                f"{values['positions_unpacked']:,} / {values['positions_packed']:,}",
                _seconds(values["unpacked_cpu_s"]),
                _seconds(values["packed_cpu_s"]),
                f"**{values['unpacked_cpu_s'] / values['packed_cpu_s']:.2f}x**",
                f"{values['unpacked_s'] / values['packed_s']:.2f}x",
            ]
        )
    total = {
        key: sum(v[key] for v in figures["tasks"].values())
        for key in ("unpacked_cpu_s", "packed_cpu_s")
    }
    largest = max(v["max_abs_logprob_difference"] for v in figures["tasks"].values())
    return _table(header, rows) + (
        "\n\nRequests that share their context with no other (all of LAMBADA's) are not packed: "
        "they keep one row each, as in the baseline. "
        f"Medians of {figures['rounds']} interleaved rounds per task. All four tasks: "
        f"{_seconds(total['unpacked_cpu_s'])} CPU s one row each, {_seconds(total['packed_cpu_s'])}"
        f" packed, **{total['unpacked_cpu_s'] / total['packed_cpu_s']:.2f}x**. The largest "
        f"difference of a summed continuation log-prob between the two: {largest:.1e} nats."
    )


# Sections of BENCHMARKS.md whose tables are still typed by hand, and why; tests/
# test_benchmarks_md.py fails on a hand-written table anywhere else (and on a stale entry here).
HAND_WRITTEN: dict[str, str] = {}
RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "alignment": alignment,
    "align_many": align_many,
    "gold_alignment": gold_alignment,
    "gold_step": gold_step,
    "gold_memory": gold_memory,
    "teacher_cache": teacher_cache,
    "trainer_step": trainer_step,
    "losses_alm": losses,
    "losses_tvdpp": losses,
    "losses_alm_kept": losses_kept,
    "import_time": import_time,
    "vocab_map": vocab_map,
    "transplant": transplant,
    "specdec_identical": specdec_identical,
    "specdec_tli": specdec_tli,
    "ensemble_lockstep": ensemble_lockstep,
    "ensemble_bytes": ensemble_bytes,
    "byte_lm_tree": byte_lm_tree,
    "byte_mc_lanes": byte_mc_lanes,
    "genlm_bytes": genlm_bytes,
    "evaluate_packing": evaluate_packing,
}
TABLES: dict[str, Callable[[], str]] = {
    name: partial(_with_stamp, name, render) for name, render in RENDERERS.items()
}


if __name__ == "__main__":
    sys.exit(markdown_tables.main(PAGE, TABLES, sys.argv[1:]))
