"""Training batches for SPLADE fine-tuning: (query, clicked document [, hard negatives]).

Every document carries an integer key (its row in the corpus) so the loss can recognise the same
document appearing twice in a (global) batch and not use it as its own negative.
"""
from __future__ import annotations

import random

import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from splade_exp.data.collection import Collection


class PairDataset(Dataset):
    def __init__(self, collection: Collection, negatives: dict[str, list[str]] | None = None,
                 num_negatives: int = 0, seed: int = 0) -> None:
        self.pairs = collection.train_pairs()
        if not self.pairs:
            raise ValueError(f"{collection.path}: qrels/train.tsv has no positive pairs to train on")
        self.queries = collection.queries
        self.corpus = collection.corpus
        self.doc_keys = {did: i for i, did in enumerate(collection.corpus)}
        self.negatives = negatives or {}
        self.num_negatives = num_negatives
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        qid, did = self.pairs[i]
        negs: list[str] = []
        if self.num_negatives:
            pool = [n for n in self.negatives.get(qid, []) if n != did]
            if not pool:  # no mined negatives for this query: random documents
                pool = [self.rng.choice(list(self.doc_keys)) for _ in range(self.num_negatives)]
            negs = [pool[self.rng.randrange(len(pool))] for _ in range(self.num_negatives)]
        return self.queries[qid], self.corpus[did], self.doc_keys[did], [self.corpus[n] for n in negs], [self.doc_keys[n] for n in negs]


class PairCollator:
    """Tokenises a list of dataset items into query and document tensors.

    Documents are laid out as [positives of all queries] + [negatives, query-major], so query i's
    positive is row i.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, query_max_length: int, doc_max_length: int) -> None:
        self.tokenizer = tokenizer
        self.query_max_length = query_max_length
        self.doc_max_length = doc_max_length

    def _tok(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def __call__(self, items):
        queries = [it[0] for it in items]
        docs = [it[1] for it in items] + [t for it in items for t in it[3]]
        keys = [it[2] for it in items] + [k for it in items for k in it[4]]
        q = self._tok(queries, self.query_max_length)
        d = self._tok(docs, self.doc_max_length)
        return {
            "q_input_ids": q["input_ids"], "q_attention_mask": q["attention_mask"],
            "d_input_ids": d["input_ids"], "d_attention_mask": d["attention_mask"],
            "doc_keys": torch.tensor(keys, dtype=torch.long),
            "pos_index": torch.arange(len(items), dtype=torch.long),
        }
