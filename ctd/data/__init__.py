"""ctd.data: streaming text/JSONL/parquet readers and the cross-tokenizer DataModule.

* `read_examples`: stream texts and chats from one file (long texts split by bytes).
* `DocumentStream`: an IterableDataset over files, seeded shuffling, sharded over ranks/workers.
* `CrossTokenizerDataModule`: files -> `ctd.alignment.CrossTokenizerBatch` DataLoaders.
* `suggest_max_document_bytes`: a document byte budget that fits both tokenizers' contexts.
* `demo_corpus_paths`: the bundled public-domain demo corpus (train, held out).
* `bundled_tokenizer_dir`: a tokenizer shipped in ctd (GPT-2's), unpacked once.
"""

from ctd.data.budget import suggest_max_document_bytes
from ctd.data.datamodule import CrossTokenizerDataModule, EpochDataLoader
from ctd.data.datasets import DocumentStream
from ctd.data.demo import BUNDLED_TOKENIZERS, bundled_tokenizer_dir, demo_corpus_paths
from ctd.data.readers import Example, read_examples
from ctd.data.splitting import split_text

__all__ = [
    "BUNDLED_TOKENIZERS",
    "CrossTokenizerDataModule",
    "DocumentStream",
    "EpochDataLoader",
    "Example",
    "bundled_tokenizer_dir",
    "demo_corpus_paths",
    "read_examples",
    "split_text",
    "suggest_max_document_bytes",
]
