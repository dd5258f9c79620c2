"""results/transplant.md, held-out anchors: how well OMP predicts base rows it can check.

Anchors are tokens both vocabularies share, so their base rows are known. 1,000 of them (seeded)
are held out and predicted, like new tokens, from the others: OMP in the donor's (Gemma-3-270m)
input embedding space, the same coefficients on the base's (SmolLM2-135M-Instruct) rows. The
prediction is compared with the true base row (cosine, relative error, norm ratio). A second
part codes 1,000 sampled *new* Gemma-3 rows and reports the coefficient and row sizes, with the
guard against nearly collinear atoms off (`min_new_share=0`, textbook OMP) and on (default).

    OMP_NUM_THREADS=1 .venv/bin/python results/transplant_holdout.py \
        --out results/transplant/holdout.json

The last stdout line is the JSON object also written to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ctd.models import gemma3_270m_checkpoint, load_causal_lm, load_tokenizer, smollm2_checkpoint
from ctd.models.loading import input_embedding_weight
from ctd.models.omp import OMPResult, orthogonal_matching_pursuit
from ctd.models.transplant import transplant_plan

KS = (8, 32, 64)


def embeddings() -> tuple[Tensor, Tensor, Any]:
    """Base and donor input embeddings (float32) and the transplant plan."""
    cache = Path.home() / ".cache" / "ctd"
    base_path, donor_path = smollm2_checkpoint(cache), gemma3_270m_checkpoint(cache)
    base, donor = load_causal_lm(str(base_path)), load_causal_lm(str(donor_path))
    base_rows = input_embedding_weight(base).detach().float()
    donor_rows = input_embedding_weight(donor).detach().float()
    plan = transplant_plan(
        load_tokenizer(str(base_path)),
        load_tokenizer(str(donor_path)),
        num_rows=donor_rows.shape[0],
    )
    return base_rows, donor_rows, plan


def quantile(values: Tensor, q: float) -> float:
    """The q-quantile, rounded."""
    return round(float(torch.quantile(values, q)), 3)


def compare(predicted: Tensor, truth: Tensor) -> dict[str, float]:
    """Mean cosine, mean relative error and norm ratios of predicted vs true base rows."""
    ratio = predicted.norm(dim=1) / truth.norm(dim=1)
    return {
        "cosine": round(float(torch.cosine_similarity(predicted, truth, dim=1).mean()), 4),
        "relative_error": round(
            float(((predicted - truth).norm(dim=1) / truth.norm(dim=1)).mean()), 4
        ),
        "norm_ratio_mean": round(float(ratio.mean()), 3),
        "norm_ratio_max": round(float(ratio.max()), 3),
    }


def apply(code: OMPResult, base_anchor_rows: Tensor) -> Tensor:
    """The base-space rows of `code`: its coefficients over the same anchors' base rows."""
    return torch.bmm(code.coefficients.unsqueeze(1), base_anchor_rows[code.indices]).squeeze(1)


def sizes(code: OMPResult, predicted: Tensor) -> dict[str, float]:
    """Coefficient L1 norms and row norms of codes and their base rows."""
    l1 = code.coefficients.abs().sum(dim=1)
    norms = predicted.norm(dim=1)
    return {
        "coefficient_l1_median": quantile(l1, 0.5),
        "coefficient_l1_q99": quantile(l1, 0.99),
        "coefficient_l1_max": round(float(l1.max()), 3),
        "row_norm_q99": quantile(norms, 0.99),
        "row_norm_max": round(float(norms.max()), 3),
    }


def main() -> None:
    """Run both parts; write --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--held-out", type=int, default=1000)
    args = parser.parse_args()
    base_rows, donor_rows, plan = embeddings()
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(plan.anchor_new), generator=generator)
    held, kept = order[: args.held_out], order[args.held_out :]
    targets, truth = donor_rows[plan.anchor_new[held]], base_rows[plan.anchor_base[held]]
    atoms, base_atoms = donor_rows[plan.anchor_new[kept]], base_rows[plan.anchor_base[kept]]
    new_rows = plan.approximate[torch.randperm(len(plan.approximate), generator=generator)]
    new_targets = donor_rows[new_rows[: args.held_out]]
    mean_row = base_atoms.mean(dim=0).expand_as(truth)
    held_out: dict[str, Any] = {"mean row": compare(mean_row, truth)}
    new: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for candidates in (128, 256):
        for share in (0.0, 0.1):
            name = f"candidates={candidates} min_new_share={share}"
            start = time.perf_counter()
            codes = orthogonal_matching_pursuit(
                targets, atoms, KS, candidates=candidates, batch_size=500, min_new_share=share
            )
            seconds[name] = round(time.perf_counter() - start, 1)
            new_codes = orthogonal_matching_pursuit(
                new_targets, atoms, KS, candidates=candidates, batch_size=500, min_new_share=share
            )
            for k in KS:
                held_out[f"omp k={k} {name}"] = compare(apply(codes[k], base_atoms), truth)
                new[f"omp k={k} {name}"] = sizes(new_codes[k], apply(new_codes[k], base_atoms))
            print(name, seconds[name], flush=True)
    result = {
        "held_out_anchors": args.held_out,
        "dictionary_anchors": len(kept),
        "base_row_norm_mean": round(float(base_atoms.norm(dim=1).mean()), 3),
        "held_out": held_out,
        "new_rows": new,
        "omp_seconds_per_1000_rows_all_k": seconds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
