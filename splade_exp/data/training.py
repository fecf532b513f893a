"""Training batches for SPLADE fine-tuning: (query, clicked document [, hard negatives] [, teacher scores]).

Every document carries an integer key (a stable 63-bit hash of its id) so the loss can recognise
the same document appearing twice in a (global, all-gathered) batch and not use it as its own
negative; the key is the same in every process, whatever its hash seed.

Items hold texts, or, with ``tokens`` (:func:`training_tokens`), token-id rows read from the
memory-mapped tokens artifact, so a sweep tokenises its training data once. The collator pads
either to the same tensors.

Sampled negatives are a function of where they are drawn, ``rng(seed, "negatives", epoch, index)``
(:mod:`splade_exp.stages.seeding`): the training sampler hands the dataset ``(epoch, index)``
(:class:`~splade_exp.stages.fit.GlobalBatchSampler`; each item appears once per epoch), so a run
resumed from a checkpoint, a loader with any number of workers and an uninterrupted run in one
process all draw the same negatives for the same item of the same epoch. A generator that advanced
with every draw would restart from the seed on resume and differ between loader workers.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from splade_exp.data.collection import Collection, DataError
from splade_exp.data.distillation import teacher_row
from splade_exp.data.tokenized import TokenizedTexts, pad_rows, tokenized
from splade_exp.stages.seeding import rng


def doc_key(did: str) -> int:
    return int.from_bytes(hashlib.blake2b(did.encode("utf-8"), digest_size=8).digest(), "little") >> 1


class PairDataset(Dataset):
    """Items by index ``i`` or by position ``(epoch, i)`` (what the training sampler passes).

    Args:
        negatives: hard negatives per query id (default: the collection's, e.g. from triples).
        num_negatives: hard negatives per item; queries without any get random corpus documents.
        tokens: (query tokens, document tokens) to return token rows instead of texts.
    """

    #: takes ``(epoch, index)`` keys: its random draws depend on the epoch (GlobalBatchSampler)
    epoch_keyed = True

    def __init__(self, collection: Collection, negatives: dict[str, list[str]] | None = None,
                 num_negatives: int = 0, seed: int = 0,
                 tokens: tuple[TokenizedTexts, TokenizedTexts] | None = None) -> None:
        self.pairs = collection.train_pairs()
        if not self.pairs:
            raise DataError(f"{collection.qrels_files.get('train', collection.path)}: no positive training pair")
        self.collection = collection
        self.negatives = collection.negatives if negatives is None else negatives
        self.num_negatives = num_negatives
        self.doc_ids = list(collection.corpus)  # pool of random negatives
        self.tokens = tokens
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def _query(self, qid: str):
        return self.tokens[0].row(qid) if self.tokens else self.collection.queries[qid]

    def _doc(self, did: str):
        return self.tokens[1].row(did) if self.tokens else self.collection.document(did)

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, i = key if isinstance(key, tuple) else (0, key)
        qid, did = self.pairs[i]
        negs: list[str] = []
        if self.num_negatives:
            draw = rng(self.seed, "negatives", int(epoch), int(i))
            pool = [n for n in self.negatives.get(qid, []) if n != did]
            if not pool:  # no mined negatives for this query: random documents
                pool = [self.doc_ids[j] for j in draw.integers(len(self.doc_ids), size=self.num_negatives)]
            negs = [pool[j] for j in draw.integers(len(pool), size=self.num_negatives)]
        item = self._query(qid), self._doc(did), doc_key(did), [self._doc(n) for n in negs], [doc_key(n) for n in negs]
        if self.collection.teacher:  # distillation: the teacher's scores of [positive, negatives]
            item += (teacher_row(self.collection, qid, [did, *negs]),)
        return item


class PairCollator:
    """Tokenises (or pads pre-tokenised) items into query and document tensors.

    Documents are laid out as [positives of all queries] + [negatives, query-major], so query i's
    positive is row i. Items that carry teacher scores (a collection with ``teacher`` scores) add
    ``teacher_scores`` (Nq, 1 + n): query i's row scores its positive, then its negatives in order.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, query_max_length: int, doc_max_length: int) -> None:
        self.tokenizer = tokenizer
        self.query_max_length = query_max_length
        self.doc_max_length = doc_max_length

    def _tok(self, texts: list, max_length: int) -> dict[str, torch.Tensor]:
        if texts and isinstance(texts[0], np.ndarray):
            return pad_rows(texts, self.tokenizer.pad_token_id, self.tokenizer.padding_side)
        enc = self.tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def __call__(self, items):
        queries = [it[0] for it in items]
        docs = [it[1] for it in items] + [t for it in items for t in it[3]]
        keys = [it[2] for it in items] + [k for it in items for k in it[4]]
        q = self._tok(queries, self.query_max_length)
        d = self._tok(docs, self.doc_max_length)
        batch = {
            "q_input_ids": q["input_ids"], "q_attention_mask": q["attention_mask"],
            "d_input_ids": d["input_ids"], "d_attention_mask": d["attention_mask"],
            "doc_keys": torch.tensor(keys, dtype=torch.long),
            "pos_index": torch.arange(len(items), dtype=torch.long),
        }
        if len(items[0]) > 5:  # (Nq, 1 + n) teacher scores of each query's [positive, negatives]
            batch["teacher_scores"] = torch.tensor([it[5] for it in items], dtype=torch.float32)
        return batch


def training_tokens(artifacts_dir, collection: Collection, tokenizer, query_max_length: int,
                    doc_max_length: int) -> tuple[TokenizedTexts, TokenizedTexts]:
    """(training queries, corpus + training-only documents) as tokens artifacts, built once."""
    key = collection.key()
    train_qids = dict.fromkeys(q for q, _ in collection.train_pairs())
    queries = {q: collection.queries[q] for q in train_qids}
    docs = collection.corpus if not collection.train_docs else {**collection.corpus, **collection.train_docs}
    return (tokenized(artifacts_dir, key, "train_queries", queries, tokenizer, query_max_length),
            tokenized(artifacts_dir, key, "docs", docs, tokenizer, doc_max_length))
