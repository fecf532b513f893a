"""MS MARCO passage ranking files (``data=msmarco data.path=/path/to/msmarco``).

Files, as distributed (``collectionandqueries.tar.gz`` and the training triples), names relative to
``data.path`` unless absolute:

- ``collection.tsv``: ``pid<TAB>passage`` (8.8M lines);
- ``queries.*.tsv``: ``qid<TAB>query``; every listed file goes into one query table (ids are
  unique across MS MARCO's splits; a repeated id is an error naming both lines);
- qrels per split, TREC four-column ``qid 0 pid grade`` (``qrels.train.tsv``,
  ``qrels.dev.small.tsv``), or BEIR's three-column form;
- optional training triples, one per line, either ids ``qid<TAB>pid<TAB>nid``
  (``qidpidtriples.train.full.2.tsv``) or texts ``query<TAB>positive<TAB>negative``
  (``triples.train.small.tsv``); ``triples_format: auto`` tells them apart by whether the three
  fields are integers.

Triples give training pairs and hard negatives (``data.num_negatives`` > 0 uses them). With id
triples the pair (qid, pid) joins the ``train`` split and nid becomes a hard negative of qid.
Text triples carry their own texts: the query gets the id ``t<sha1 of its text>`` and each
passage the id ``p<sha1 of its text>`` in ``Collection.train_docs`` (training-only documents,
not indexed), so the same passage seen twice is one document and never its own negative.
``max_triples`` reads only the first N lines (the full files have hundreds of millions).
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from splade_exp.data.collection import (Collection, DataError, TextTable, add_qrels, iter_tsv, read_texts_tsv,
                                        resolve)
from splade_exp.data.sources import data_dir

log = logging.getLogger(__name__)

TRIPLE_FORMATS = ("auto", "ids", "text")


def text_id(prefix: str, text: str) -> str:
    return prefix + hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


class MsMarco:
    PATH_OPTIONS = ("path", "collection", "queries", "qrels", "triples")

    def __init__(self, path: str | None = None, collection: str = "collection.tsv",
                 queries: list[str] | tuple[str, ...] = ("queries.train.tsv", "queries.dev.small.tsv"),
                 qrels: dict[str, str] | None = None, triples: str | None = None, triples_format: str = "auto",
                 max_triples: int | None = None, cache_dir: str | os.PathLike | None = None) -> None:
        base = self.path = data_dir(path)  # the directory relative names (and distillation files) are in
        self.base = base
        self.collection = resolve(base, collection, "data.source.collection", "MS MARCO collection")
        if isinstance(queries, str):
            queries = [queries]
        self.queries = [resolve(base, q, "data.source.queries", "MS MARCO queries file") for q in queries]
        self.qrels = {split: resolve(base, f, f"data.source.qrels.{split}", "qrels file")
                      for split, f in (qrels or {}).items() if f}
        self.triples = resolve(base, triples, "data.source.triples", "triples file") if triples else None
        if triples_format not in TRIPLE_FORMATS:
            raise DataError(f"data.source.triples_format must be one of {TRIPLE_FORMATS}, got {triples_format!r}")
        if max_triples is not None and (isinstance(max_triples, bool) or not isinstance(max_triples, int)
                                        or max_triples <= 0):
            raise DataError(f"data.source.max_triples must be a positive integer or null, got {max_triples!r}")
        self.triples_format, self.max_triples = triples_format, max_triples

    def files(self) -> dict[str, Path]:
        files = {"corpus": self.collection, **{f"queries/{i}": q for i, q in enumerate(self.queries)},
                 **{f"qrels/{split}": f for split, f in self.qrels.items()}}
        if self.triples is not None:
            files["triples"] = self.triples
        return files

    def load(self, drop_unknown_qrels: bool = False, drop_empty: bool = False) -> Collection:
        corpus = read_texts_tsv(self.collection, "passage", drop_empty)
        table = TextTable("query", drop_empty)
        for f in self.queries:
            read_texts_tsv(f, "query", drop_empty, table=table)
        queries = table.done(self.queries[0] if self.queries else self.base)
        c = Collection(self.base, corpus, queries, files=[self.collection, *self.queries])
        for split, f in self.qrels.items():
            add_qrels(c, split, f, drop_unknown_qrels)
        if self.triples is not None:
            read_triples(c, self.triples, self.triples_format, self.max_triples, drop_unknown_qrels)
        return c


def read_triples(c: Collection, path: Path, fmt: str, limit: int | None, drop_unknown: bool) -> None:
    """Add the triples of ``path`` to ``c``: train pairs and hard negatives (see module doc)."""
    train = c.qrels.setdefault("train", {})
    c.qrels_files.setdefault("train", path)
    c.files.append(path)
    dropped = n = 0
    for lineno, fields in iter_tsv(path, 3, "query<TAB>positive<TAB>negative", max_fields=3):
        if limit is not None and n >= limit:
            break
        n += 1
        q, pos, neg = (f.strip() for f in fields)
        kind = fmt if fmt != "auto" else ("ids" if q.isdigit() and pos.isdigit() and neg.isdigit() else "text")
        if fmt == "auto":
            fmt = kind  # the first line decides for the whole file
        if kind == "ids":
            missing = ("query id", q) if q not in c.queries else ("passage id", pos) if pos not in c.corpus else \
                ("passage id", neg) if neg not in c.corpus else None
            if missing:
                if not drop_unknown:
                    raise DataError(f"{path}:{lineno}: {missing[0]} {missing[1]!r} is not in the collection; fix "
                                    "the file or set data.drop_unknown_qrels=true to drop such triples")
                dropped += 1
                continue
        else:
            if not (q and pos and neg):
                raise DataError(f"{path}:{lineno}: a text triple has an empty field; fix or remove the line")
            qid, pid, nid = text_id("t", q), text_id("p", pos), text_id("p", neg)
            c.queries.setdefault(qid, " ".join(q.split()))
            c.train_docs.setdefault(pid, " ".join(pos.split()))
            c.train_docs.setdefault(nid, " ".join(neg.split()))
            q, pos, neg = qid, pid, nid
        train.setdefault(q, {})[pos] = 1
        negs = c.negatives.setdefault(q, [])
        if neg not in negs:
            negs.append(neg)
    if dropped:
        log.warning("%s: dropped %d triples with unknown ids (data.drop_unknown_qrels=true)", path, dropped)
    if not train:
        raise DataError(f"{path}: no usable training triple")
