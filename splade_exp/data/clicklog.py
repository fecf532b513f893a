"""Training pairs from a click log (``data=clicklog``): (query, clicked document) rows.

The corpus, the evaluation queries and their qrels come from a BEIR directory (``data.path``);
the click log (``data.source.clicks``) replaces its ``train`` split. Schema, TSV with a header
line or JSON lines, one click record per row:

| column | required | meaning |
|---|---|---|
| ``query`` *or* ``query_id`` | one of them | the query text, or the id of a query in ``queries.jsonl`` |
| ``doc_id`` | yes | the clicked document, an id of ``corpus.jsonl`` |
| ``clicks`` | no (1) | a non-negative integer count |

```
query<TAB>doc_id<TAB>clicks              {"query": "cheap flights rome", "doc_id": "D17", "clicks": 3}
cheap flights rome<TAB>D17<TAB>3         {"query_id": "q12", "doc_id": "D17"}
```

Rows naming the same (query, document) are summed. Every pair with at least
``data.source.min_clicks`` clicks becomes one training pair (its grade in the ``train`` split is
the click count). A query given as text gets the id ``c<sha1 of the text>``; identical texts
(after whitespace normalisation) are one query. A clicked document missing from the corpus is an
error naming the line, or is dropped (with a count) when ``data.drop_unknown_qrels=true``.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from splade_exp.data.collection import (Collection, DataError, iter_jsonl, iter_tsv, json_id, json_text,
                                        load_beir, resolve)
from splade_exp.data.sources import Beir

log = logging.getLogger(__name__)

COLUMNS = ("query", "query_id", "doc_id", "clicks")


def query_id(text: str) -> str:
    return "c" + hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def _rows(path: Path):
    """(line number, record dict) of a TSV (header line) or JSON-lines click log."""
    if path.suffix.lower() in (".jsonl", ".json"):
        yield from iter_jsonl(path, ("doc_id",))
        return
    header = None
    for lineno, fields in iter_tsv(path, 2, "query<TAB>doc_id[<TAB>clicks]"):
        if header is None:
            header = [f.strip() for f in fields]
            unknown = [h for h in header if h not in COLUMNS]
            if unknown or "doc_id" not in header:
                raise DataError(f"{path}:{lineno}: the first line must be a header naming columns from {COLUMNS} "
                                f"(with doc_id and query or query_id), got {header}")
            continue
        if len(fields) != len(header):
            raise DataError(f"{path}:{lineno}: {len(fields)} fields for the {len(header)} header columns {header}")
        yield lineno, dict(zip(header, fields))


def read_clicks(path: Path, queries: dict[str, str], corpus, min_clicks: int = 1,
                drop_unknown: bool = False) -> dict[str, dict[str, int]]:
    """query id -> doc id -> total clicks (pairs under ``min_clicks`` removed); adds text queries."""
    totals: dict[str, dict[str, int]] = {}
    dropped = 0
    for lineno, row in _rows(path):
        text, qid = row.get("query"), row.get("query_id")
        if (text is None) == (qid is None):
            raise DataError(f"{path}:{lineno}: give exactly one of 'query' (text) and 'query_id'")
        if qid is None:
            text = json_text(row, ("query",), path, lineno)
            text = " ".join(text.split())
            if not text:
                raise DataError(f"{path}:{lineno}: empty query text; fix or remove the line")
            qid = query_id(text)
            queries.setdefault(qid, text)
        else:
            qid = json_id(row, "query_id", path, lineno)
        did = json_id(row, "doc_id", path, lineno)
        clicks = _clicks(row.get("clicks", 1), path, lineno)
        unknown = f"query id {qid!r} is not in the queries" if qid not in queries else \
            f"document id {did!r} is not in the corpus" if did not in corpus else None
        if unknown:
            if not drop_unknown:
                raise DataError(f"{path}:{lineno}: {unknown}; fix the file or set data.drop_unknown_qrels=true "
                                "to drop such clicks")
            dropped += 1
            continue
        docs = totals.setdefault(qid, {})
        docs[did] = docs.get(did, 0) + clicks
    if dropped:
        log.warning("%s: dropped %d click rows with unknown ids (data.drop_unknown_qrels=true)", path, dropped)
    pairs = {q: {d: n for d, n in docs.items() if n >= min_clicks and n > 0} for q, docs in totals.items()}
    return {q: docs for q, docs in pairs.items() if docs}


def _clicks(raw, path: Path, lineno: int) -> int:
    """A non-negative integer count: an int, a whole JSON number (``3.0``) or a TSV field of digits."""
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw)
    if isinstance(raw, float) and raw.is_integer() and raw >= 0:
        return int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    raise DataError(f"{path}:{lineno}: clicks {raw!r} is not a non-negative integer")


class ClickLog:
    PATH_OPTIONS = ("path", "clicks")

    def __init__(self, path: str | None = None, clicks: str | None = None, min_clicks: int = 1,
                 cache_dir: str | os.PathLike | None = None) -> None:
        self.beir = Beir(path, cache_dir)
        self.path = self.beir.path
        if not clicks:
            raise DataError("data.source.clicks is not set; pass data.source.clicks=<click log .tsv or .jsonl>")
        self.clicks = resolve(self.beir.path, clicks, "data.source.clicks", "click log")
        if isinstance(min_clicks, bool) or not isinstance(min_clicks, int) or min_clicks < 1:
            raise DataError(f"data.source.min_clicks must be a positive integer, got {min_clicks!r}")
        self.min_clicks = min_clicks

    def files(self) -> dict[str, Path]:
        return {**self.beir.files(), "clicks": self.clicks}

    def load(self, drop_unknown_qrels: bool = False, drop_empty: bool = False) -> Collection:
        c = load_beir(self.beir.path, None, drop_unknown_qrels, drop_empty)
        train = read_clicks(self.clicks, c.queries, c.corpus, self.min_clicks, drop_unknown_qrels)
        if not train:
            raise DataError(f"{self.clicks}: no (query, document) pair with at least data.source.min_clicks="
                            f"{self.min_clicks} clicks")
        c.qrels["train"], c.qrels_files["train"] = train, self.clicks
        c.files.append(self.clicks)
        return c
