"""ALM cross-tokenizer distillation inside a Hugging Face ``Trainer.compute_loss``.

Everything is tiny and offline: two byte-level BPE tokenizers with different vocabularies are
trained in the script, the teacher and the student are small random Llama models, and
``ctd.alignment`` turns each text into chunks shared by the two tokenizations. The student's
token log-probs come from ``token_logprobs_from_hidden`` (no (B, T, V) logits).

Run: python examples/hf_trainer_alm.py   (CPU, well under a minute)
"""

import tempfile

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

from ctd.alignment import align, encode
from ctd.losses import alm_loss, token_logprobs_from_hidden

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Cross-tokenizer distillation matches chunk likelihoods.",
    "Tokenizers disagree about where words are cut, but bytes agree.",
    "A small student learns from a larger teacher, one chunk at a time.",
    "Café, naïve, 東京 and emoji 🙂 are bytes too.",
] * 8


def train_tokenizer(vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TEXTS, trainer)
    return tokenizer


def tiny_llama(vocab_size: int, hidden_size: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(config)


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (width - len(row)) for row in rows])


class AlignedCollator:
    """Encode each text with both tokenizers and attach the per-token chunk ids."""

    def __init__(self, teacher_tokenizer: Tokenizer, student_tokenizer: Tokenizer) -> None:
        self.teacher_tokenizer, self.student_tokenizer = teacher_tokenizer, student_tokenizer

    def __call__(self, examples: list[dict[str, str]]) -> dict[str, torch.Tensor]:
        texts = [example["text"] for example in examples]
        teacher = encode(self.teacher_tokenizer, texts, add_special_tokens=False)
        student = encode(self.student_tokenizer, texts, add_special_tokens=False)
        alignments = [align(t, s) for t, s in zip(teacher, student, strict=True)]
        batch = {}
        for side, encoded in (("teacher", teacher), ("student", student)):
            ids = [e.input_ids.tolist() for e in encoded]
            batch[f"{side}_input_ids"] = pad(ids, 0)
            batch[f"{side}_mask"] = pad([[1] * len(row) for row in ids], 0).bool()
            index = [getattr(a, f"{side}_chunk_index").tolist() for a in alignments]
            batch[f"{side}_chunk_index"] = pad(index, -1)
        return batch


class ALMTrainer(Trainer):
    """A Trainer whose loss is ALM against a frozen teacher."""

    def __init__(self, *args, teacher: LlamaForCausalLM, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval().requires_grad_(False)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        with torch.no_grad():
            teacher_hidden = self.teacher.model(
                input_ids=inputs["teacher_input_ids"], attention_mask=inputs["teacher_mask"].long()
            ).last_hidden_state  # (B, Tt, d_t)
            teacher = token_logprobs_from_hidden(
                teacher_hidden, self.teacher.lm_head.weight, inputs["teacher_input_ids"]
            )
        student_hidden = model.model(
            input_ids=inputs["student_input_ids"], attention_mask=inputs["student_mask"].long()
        ).last_hidden_state  # (B, Ts, d_s)
        student = token_logprobs_from_hidden(
            student_hidden, model.get_output_embeddings().weight, inputs["student_input_ids"]
        )
        loss = alm_loss(
            student.logprobs,  # student first, teacher second, as in every ctd loss
            teacher.logprobs,
            student_chunk_index=inputs["student_chunk_index"],
            teacher_chunk_index=inputs["teacher_chunk_index"],
            student_mask=inputs["student_mask"],
            teacher_mask=inputs["teacher_mask"],
        )
        return (loss, None) if return_outputs else loss


def main() -> None:
    torch.manual_seed(0)
    teacher_tokenizer, student_tokenizer = train_tokenizer(400), train_tokenizer(300)
    teacher = tiny_llama(teacher_tokenizer.get_vocab_size(), 64)
    student = tiny_llama(student_tokenizer.get_vocab_size(), 32)
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            max_steps=20,
            per_device_train_batch_size=4,
            learning_rate=3e-3,
            logging_steps=5,
            report_to=[],
            remove_unused_columns=False,
            use_cpu=True,
            save_strategy="no",
        )
        trainer = ALMTrainer(
            model=student,
            args=args,
            train_dataset=[{"text": text} for text in TEXTS],
            data_collator=AlignedCollator(teacher_tokenizer, student_tokenizer),
            teacher=teacher,
        )
        result = trainer.train()
    print(f"final ALM training loss: {result.training_loss:.4f}")


if __name__ == "__main__":
    main()
