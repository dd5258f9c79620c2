#!/usr/bin/env python3
"""Learned mixture weights for the lockstep ensemble (results/ensemble.md, table learned_weights).

    OMP_NUM_THREADS=1 .venv/bin/python results/ensemble_learned_weights.py \
        --student runs/transplant_fit/omp_k64/export --out results/ensemble/learned_weights.json

The lockstep pair of the table `lockstep` (SmolLM2 moved onto Gemma-3's tokenizer + Gemma-3-270m)
on the same test texts (the first --bytes of ctd's held-out English corpus; the de/fr/ja/zh-cn
Debian Reference passages of `ensemble_bpb.passage`, from the middle of each file), read as
`ctd ensemble` reads them. For each text, `EnsembleModule` with `learn_weights=True` learns the
two mixture weights by `Trainer.fit` on a dev text of --bytes from the same source that does not
overlap the test bytes (the prose just before the middle; the end of the held-out corpus), in
documents of --document-bytes. Only the weights train; the members are frozen, so their
log-probs of each document are computed once and memoised (exact: the same text always gets the
same scores). Then `Trainer.test` gives each member, the equal-weight ensemble and the
learned-weight ensemble on exactly the same test bytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ensemble_bpb import CACHE, CORPUS, HELDOUT, LANGUAGES, is_prose, passage  # noqa: E402


def dev_passage(language: str, num_bytes: int) -> str:
    """Prose from just before the middle of debian-reference.<language>, cut to num_bytes.

    The test passage of `ensemble_bpb.passage` starts at the middle; these paragraphs end there.
    Paragraphs found verbatim in the English file (left untranslated) are skipped.
    """
    text = (CORPUS / f"debian-reference.{language}.txt").read_text(encoding="utf-8")
    english = (CORPUS / "debian-reference.en.txt").read_text(encoding="utf-8")
    untranslated = {" ".join(block.split()) for block in english.split("\n\n")}
    found: list[str] = []
    size = 0
    for block in reversed(text[: len(text) // 2].split("\n\n")):
        paragraph = " ".join(block.split())
        if paragraph in untranslated:  # left in English by the translators
            continue
        if len(paragraph.encode("utf-8")) >= 40 and is_prose(paragraph):
            found.insert(0, paragraph)
            size += len(paragraph.encode("utf-8")) + 1
            if size >= num_bytes:
                return " ".join(found).encode("utf-8")[:num_bytes].decode("utf-8", errors="ignore")
    raise SystemExit(f"not {num_bytes} bytes of prose before the middle of {language}")


def test_and_dev_texts(num_bytes: int) -> dict[str, tuple[str, str]]:
    """Per text name: (test source, dev text).

    The test sources are those of the lockstep table; English's dev text is the end of the
    held-out corpus, which the test's first bytes never reach.
    """
    heldout = gzip.decompress(HELDOUT.read_bytes()).decode("utf-8")
    end = heldout.encode("utf-8")[-num_bytes:].decode("utf-8", errors="ignore")
    assert len(heldout.encode("utf-8")) > 4 * num_bytes, "held-out text too short to split"
    texts = {"en (held-out)": (heldout, end)}
    for language in LANGUAGES[1:]:
        texts[language] = (passage(language, num_bytes), dev_passage(language, num_bytes))
    return texts


def documents(text: str, *, limit_bytes: int, document_bytes: int) -> list[str]:
    """The first limit_bytes of the text in pieces of at most document_bytes.

    As `ctd ensemble --text-file F --limit-bytes N --document-bytes D` reads them.
    """
    import tempfile

    from ctd.ensemble.cli import read_texts

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "text.txt"
        path.write_text(text, encoding="utf-8")
        return read_texts(str(path), limit_bytes=limit_bytes, document_bytes=document_bytes)


def memoised(score_texts: Callable[[list[str]], list[Any]]) -> Callable[[list[str]], list[Any]]:
    """score_texts with each text's scores kept after its first call."""
    cache: dict[str, Any] = {}

    def score(texts: list[str]) -> list[Any]:
        missing = [text for text in dict.fromkeys(texts) if text not in cache]
        if missing:
            cache.update(zip(missing, score_texts(missing), strict=True))
        return [cache[text] for text in texts]

    return score


def test_figures(trainer: Any, module: Any, loader: Any) -> dict[str, float]:
    """`Trainer.test` of the module: bits per byte of each member and of the ensemble."""
    (metrics,) = trainer.test(module, dataloaders=loader, verbose=False)
    return {key.removeprefix("test/"): round(float(value), 4) for key, value in metrics.items()}


def learn_one(score: Any, test: str, dev: str, args: argparse.Namespace) -> dict[str, Any]:
    """Equal-weight test figures, the weights learned on dev, and the learned-weight figures."""
    import lightning as L

    from ctd.trainers.ensemble import EnsembleModule, text_dataloader

    module = EnsembleModule(score, ["student", "gemma3"], learn_weights=True, learning_rate=args.lr)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    test_documents = documents(test, limit_bytes=args.bytes, document_bytes=1024)  # as `lockstep`
    dev_documents = documents(dev, limit_bytes=args.bytes, document_bytes=args.document_bytes)
    test_loader = text_dataloader(test_documents, batch_size=8)
    dev_loader = text_dataloader(dev_documents, batch_size=1)
    equal = test_figures(trainer, module, test_loader)
    start = time.process_time()
    trainer.fit(module, train_dataloaders=dev_loader)
    fit_cpu = time.process_time() - start
    learned = test_figures(trainer, module, test_loader)
    return {
        "test_bytes": sum(len(text.encode("utf-8")) for text in test_documents),
        "dev_bytes": sum(len(text.encode("utf-8")) for text in dev_documents),
        "equal": equal,
        "learned_weights": [round(float(w), 4) for w in module.weights],
        "learned": learned,
        "fit_cpu_seconds": round(fit_cpu, 1),
    }


def main() -> None:
    """Run every text and write the JSON output after each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", required=True, help="SmolLM2 on Gemma-3's tokenizer")
    parser.add_argument("--bytes", type=int, default=1024, help="test (and dev) bytes per text")
    parser.add_argument("--document-bytes", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from ctd.ensemble import LockstepEnsemble, score_lockstep
    from ctd.models import load_causal_lm, load_tokenizer
    from ctd.models.gemma import gemma3_270m_checkpoint

    paths = [args.student, str(gemma3_270m_checkpoint(CACHE))]
    models = [load_causal_lm(path) for path in paths]
    tokenizer = load_tokenizer(paths[1])
    ensemble = LockstepEnsemble(models)
    start = time.perf_counter()
    result: dict[str, Any] = {"student": args.student, "settings": vars(args), "texts": {}}
    for name, (test, dev) in test_and_dev_texts(args.bytes).items():
        score = memoised(partial(score_lockstep, ensemble, tokenizer))
        result["texts"][name] = learn_one(score, test, dev, args)
        print(name, json.dumps(result["texts"][name]), flush=True)
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
