"""OMP transplant: anchors copied bit for bit, planted rows recovered, heads, ids, reloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from model_support import tiny_llama
from tokenizers import AddedToken, Tokenizer, models
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from ctd.models import export_pretrained
from ctd.models.transplant import (
    baseline_init_embeddings,
    omp_init_embeddings,
    transplant_plan,
)


def _word_level(vocab: list[str]) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="<unk>"))
    backend.add_special_tokens([AddedToken("<unk>", normalized=False)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


@pytest.fixture
def pair(
    byte_level_tokenizer: PreTrainedTokenizerFast, sentencepiece_tokenizer: PreTrainedTokenizerFast
) -> tuple[PreTrainedTokenizerFast, PreTrainedTokenizerFast]:
    return byte_level_tokenizer, sentencepiece_tokenizer


def test_plan_anchors_have_identical_bytes(pair) -> None:  # type: ignore[no-untyped-def]
    base, donor = pair
    plan = transplant_plan(base, donor)
    assert len(plan.anchor_new) > 100
    for new_id, base_id in zip(plan.anchor_new.tolist(), plan.anchor_base.tolist(), strict=True):
        donor_text = donor.convert_ids_to_tokens(new_id).replace("\u2581", " ")
        assert base.decode([base_id]) == donor_text or donor_text.startswith("<0x")
    spaced = [t for t in donor.convert_ids_to_tokens(plan.anchor_new.tolist()) if t[0] == "\u2581"]
    assert len(spaced) > 3  # ▁x (SentencePiece) matches Ġx (byte level)
    assert "12" in plan.unanchored_numerals  # the byte-level side has no "12" token


@pytest.mark.parametrize("tied", [True, False])
def test_anchors_copied_bit_for_bit_and_planted_rows_recovered(pair, tied: bool) -> None:  # type: ignore[no-untyped-def]
    base_tok, donor_tok = pair
    base = tiny_llama(len(base_tok), tied=tied)
    donor = tiny_llama(len(donor_tok), tied=tied, seed=1)
    plan = transplant_plan(base_tok, donor_tok, num_rows=len(donor_tok))
    anchors_new, anchors_base = plan.anchor_new, plan.anchor_base
    # Plant: donor row of new token j = 2 * anchor[a_j] - 0.5 * anchor[b_j] in donor space; the
    # base rows then must be the same combination of the base anchors (exactly, k = 2).
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(0, len(anchors_new), (len(plan.approximate),), generator=generator)
    second = (first + 1 + torch.randint(0, 5, first.shape, generator=generator)) % len(anchors_new)
    with torch.no_grad():
        for matrix in {donor.model.embed_tokens.weight, donor.lm_head.weight}:
            matrix[plan.approximate] = (
                2.0 * matrix[anchors_new[first]] - 0.5 * matrix[anchors_new[second]]
            )
    old_input = base.model.embed_tokens.weight.detach().clone()
    old_output = base.lm_head.weight.detach().clone()
    omp_init_embeddings(base, donor, base_tok, donor_tok, 2, candidates=None, progress=False)
    new_input, new_output = base.model.embed_tokens.weight, base.lm_head.weight
    assert torch.equal(new_input[anchors_new], old_input[anchors_base])
    assert torch.equal(new_output[anchors_new], old_output[anchors_base])
    for new, old in ((new_input, old_input), (new_output, old_output)):
        expected = 2.0 * old[anchors_base[first]] - 0.5 * old[anchors_base[second]]
        torch.testing.assert_close(new[plan.approximate], expected, atol=2e-4, rtol=1e-3)
    assert (new_output is new_input) == tied
    assert base.config.vocab_size == len(donor_tok)
    assert base.config.bos_token_id == donor_tok.bos_token_id
    assert base.config.eos_token_id == donor_tok.eos_token_id


def test_result_reloads_with_plain_transformers(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base_tok, donor_tok = pair
    base = tiny_llama(len(base_tok), tied=False)
    donor = tiny_llama(len(donor_tok), tied=True, seed=1)
    omp_init_embeddings(base, donor, base_tok, donor_tok, 4, progress=False)
    export_pretrained(base, donor_tok, tmp_path / "out")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    ids = torch.tensor([donor_tok.encode("hello world 12")])
    torch.testing.assert_close(reloaded(ids).logits, base(ids).logits)


@pytest.mark.parametrize("method", ["mean", "random"])
def test_baselines_copy_anchors(pair, method: str) -> None:  # type: ignore[no-untyped-def]
    base_tok, donor_tok = pair
    model = tiny_llama(len(base_tok), tied=True)
    old = model.model.embed_tokens.weight.detach().clone()
    plan = transplant_plan(base_tok, donor_tok)
    baseline_init_embeddings(model, base_tok, donor_tok, method, plan=plan)
    new = model.model.embed_tokens.weight
    assert torch.equal(new[plan.anchor_new], old[plan.anchor_base])
    rows = new[plan.approximate]
    if method == "mean":
        torch.testing.assert_close(rows, old.mean(0).expand_as(rows))
    else:
        assert rows.std(0).mean() > 0.5 * old.std(0).mean()


@pytest.mark.parametrize("numbers", ["omp", "digits"])
def test_plan_partitions_the_rows(pair, numbers: str) -> None:  # type: ignore[no-untyped-def]
    base, donor = pair
    plan = transplant_plan(base, donor, numbers=numbers, num_rows=len(donor) + 3)  # 3 spare rows
    parts = [set(plan.copied_new.tolist()), set(plan.approximate.tolist()), set(plan.digits)]
    assert sum(len(part) for part in parts) == plan.num_rows  # disjoint ...
    assert set.union(*parts) == set(range(plan.num_rows))  # ... and covering every row
    assert set(plan.anchor_new.tolist()) <= parts[0]
    assert (len(plan.digits) > 0) == (numbers == "digits")


def test_numbers_digits_mean_of_base_pieces(pair) -> None:  # type: ignore[no-untyped-def]
    base_tok, donor_tok = pair
    plan = transplant_plan(base_tok, donor_tok, numbers="digits")
    twelve = donor_tok.convert_tokens_to_ids("12")
    pieces = plan.digits[twelve]
    assert base_tok.decode(pieces) == "12"
    base = tiny_llama(len(base_tok), tied=True)
    old = base.model.embed_tokens.weight.detach().clone()
    donor = tiny_llama(len(donor_tok), tied=True, seed=1)
    omp_init_embeddings(base, donor, base_tok, donor_tok, 2, plan=plan, progress=False)
    torch.testing.assert_close(base.model.embed_tokens.weight[twelve], old[pieces].mean(0))


def test_bad_requests(pair) -> None:  # type: ignore[no-untyped-def]
    base_tok, donor_tok = pair
    donor = tiny_llama(len(donor_tok), tied=True, seed=1)
    with pytest.raises(ValueError, match="larger than the donor's embedding width 32"):
        omp_init_embeddings(tiny_llama(len(base_tok), tied=True), donor, base_tok, donor_tok, 33)
    with pytest.raises(ValueError, match="donor tokenizer does not fit the donor"):
        omp_init_embeddings(
            tiny_llama(len(base_tok), tied=True), tiny_llama(8, tied=True), base_tok, donor_tok, 2
        )
    strangers = _word_level(["<unk>", "zzqx", "qqvw"])
    with pytest.raises(ValueError, match="no anchor tokens"):
        omp_init_embeddings(
            tiny_llama(len(base_tok), tied=True), tiny_llama(3, tied=True), base_tok, strangers, 1
        )
    few = _word_level(["<unk>", "a", "qqvw", "zzqx"])
    with pytest.raises(ValueError, match="larger than the 1 anchor tokens"):
        omp_init_embeddings(
            tiny_llama(len(base_tok), tied=True), tiny_llama(4, tied=True), base_tok, few, 2
        )


def _ctd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ctd.cli", "transplant", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_transplant_and_errors(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base_tok, donor_tok = pair
    export_pretrained(tiny_llama(len(base_tok), tied=True), base_tok, tmp_path / "base")
    export_pretrained(tiny_llama(len(donor_tok), tied=True, seed=1), donor_tok, tmp_path / "donor")
    out = tmp_path / "out"
    models = ("--base", str(tmp_path / "base"), "--donor", str(tmp_path / "donor"), "--k", "4")
    done = _ctd(*models, "--output", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["anchors"] > 100
    assert "12" in report["unanchored_numerals"]
    assert AutoModelForCausalLM.from_pretrained(out).config.vocab_size == len(donor_tok)
    (tmp_path / "donor" / "tokenizer.json").unlink()
    (tmp_path / "donor" / "tokenizer_config.json").unlink()
    failed = _ctd(*models, "--output", str(tmp_path / "out2"))
    assert failed.returncode == 2
    assert failed.stderr.startswith("ctd transplant: error: the donor")
    assert "Traceback" not in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
