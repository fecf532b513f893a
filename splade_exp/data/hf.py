"""Local files read through the Hugging Face ``datasets`` library (``data=hf``).

Corpus, queries and qrels may each be JSON lines, JSON, Parquet or CSV/TSV (the builder is chosen
by each file's extension, ``.tsv`` meaning tab-separated CSV, or forced with
``data.source.format``). ``datasets`` converts each file once into a memory-mapped Arrow cache
under ``<artifacts_dir>/hf_datasets`` that every later job reads without parsing again; the
rows are then streamed in batches into the collection's dictionaries. Only local files are read:
nothing is downloaded.

Columns are named in the config: ``doc_id`` and ``doc_text`` (a list of columns joined with a
space, e.g. ``[title, text]``), ``query_id`` and ``query_text``, and ``qrels_columns``
``[query id, document id, grade]``. Ids of any type are compared as strings. For
a CSV/TSV every column is read as a string, so ids such as ``007`` keep their zeros.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from splade_exp.data.collection import Collection, DataError, TextTable, check_qrels, resolve

BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".tsv": "csv"}


def _builder(path: Path, forced: str | None) -> tuple[str, dict]:
    name = forced or BUILDERS.get(path.suffix.lower())
    if name is None:
        raise DataError(f"{path}: cannot tell the format from the extension {path.suffix!r}; name the file "
                        f"*.jsonl/*.json/*.parquet/*.csv/*.tsv or set data.source.format to one of "
                        f"{sorted(set(BUILDERS.values()))}")
    if name not in set(BUILDERS.values()):
        raise DataError(f"data.source.format must be one of {sorted(set(BUILDERS.values()))}, got {name!r}")
    kwargs: dict = {}
    if name == "csv":  # every column a string: ids keep leading zeros, empty texts stay ""
        import csv

        import datasets

        tsv = path.suffix.lower() == ".tsv"
        with open(path, encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh, delimiter="\t" if tsv else ","), [])
        kwargs = {"delimiter": "\t" if tsv else ",", "keep_default_na": False,
                  "features": datasets.Features({c: datasets.Value("string") for c in header})}
        if tsv:
            kwargs["quoting"] = csv.QUOTE_NONE
    return name, kwargs


def _bad_json_line(path: Path) -> str | None:
    """``path:line: reason`` of the first line of a JSON-lines file that does not parse."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as err:
                    return f"{path}:{lineno}: malformed JSON ({err.msg} at column {err.colno})"
    return None


def read_table(path: Path, forced: str | None, cache_dir: Path | None, columns: list[str], key: str):
    """A ``datasets.Dataset`` of ``path`` with ``columns`` checked present."""
    import datasets

    name, kwargs = _builder(path, forced)
    try:
        ds = datasets.load_dataset(name, data_files=str(path), split="train",
                                   cache_dir=str(cache_dir) if cache_dir else None, **kwargs)
    except Exception as err:  # datasets/pyarrow raise many types; name the file and the line if we can
        where = _bad_json_line(path) if name == "json" and path.suffix.lower() == ".jsonl" else None
        raise DataError(f"{where or path}: cannot be read as {name} ({type(err).__name__}: {err}); fix the file or "
                        f"set data.source.format") from None
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataError(f"{path}: no column(s) {missing} (it has {ds.column_names}); set {key} to the right names")
    return ds


def _texts(ds, path: Path, kind: str, id_col: str, text_cols: list[str], drop_empty: bool) -> dict[str, str]:
    table = TextTable(kind, drop_empty)
    row = 0
    for batch in ds.select_columns([id_col, *text_cols]).iter(batch_size=10_000):
        for i, key in enumerate(batch[id_col]):
            text = " ".join(str(batch[c][i] or "") for c in text_cols)
            # row numbers of a JSON-lines file are its line numbers when it has no blank line
            table.add(str(key), text, path, row + i + 1)
        row += len(batch[id_col])
    return table.done(path)


class HfFiles:
    def __init__(self, corpus: str, queries: str, qrels: dict[str, str] | None = None, path: str | None = None,
                 format: str | None = None, doc_id: str = "_id", doc_text: list[str] | str = ("title", "text"),
                 query_id: str = "_id", query_text: list[str] | str = ("text",),
                 qrels_columns: list[str] = ("query-id", "corpus-id", "score"),
                 cache_dir: str | os.PathLike | None = None) -> None:
        base = Path(os.path.expanduser(str(path))) if path else None
        if base is not None and not base.is_dir():
            raise DataError(f"{base}: data.path is not a directory (file names are taken relative to it)")
        self.base = base
        self.corpus = resolve(base, corpus, "data.source.corpus", "corpus file")
        self.queries = resolve(base, queries, "data.source.queries", "queries file")
        self.qrels = {s: resolve(base, f, f"data.source.qrels.{s}", "qrels file") for s, f in (qrels or {}).items()}
        self.format = format
        for f in (self.corpus, self.queries, *self.qrels.values()):
            _builder(f, format)
        self.doc_id, self.query_id = doc_id, query_id
        self.doc_text = [doc_text] if isinstance(doc_text, str) else list(doc_text)
        self.query_text = [query_text] if isinstance(query_text, str) else list(query_text)
        if len(qrels_columns) != 3:
            raise DataError(f"data.source.qrels_columns must name 3 columns (query id, document id, grade), "
                            f"got {list(qrels_columns)}")
        self.qrels_columns = list(qrels_columns)
        self.cache_dir = Path(cache_dir) / "hf_datasets" if cache_dir else None

    def load(self, drop_unknown_qrels: bool = False, drop_empty: bool = False) -> Collection:
        cols = self.doc_text
        docs = read_table(self.corpus, self.format, self.cache_dir, [self.doc_id, *cols],
                          "data.source.doc_id / data.source.doc_text")
        corpus = _texts(docs, self.corpus, "document", self.doc_id, cols, drop_empty)
        qs = read_table(self.queries, self.format, self.cache_dir, [self.query_id, *self.query_text],
                        "data.source.query_id / data.source.query_text")
        queries = _texts(qs, self.queries, "query", self.query_id, self.query_text, drop_empty)
        c = Collection(self.base or self.corpus.parent, corpus, queries,
                       files=[self.corpus, self.queries, *self.qrels.values()])
        qcol, dcol, gcol = self.qrels_columns
        for split, f in self.qrels.items():
            ds = read_table(f, self.format, self.cache_dir, self.qrels_columns, "data.source.qrels_columns")
            qrels: dict[str, dict[str, int]] = {}
            row = 0
            for batch in ds.select_columns(self.qrels_columns).iter(batch_size=50_000):
                for q, d, g in zip(batch[qcol], batch[dcol], batch[gcol]):
                    row += 1
                    try:
                        grade = int(g)
                    except (TypeError, ValueError):
                        raise DataError(f"{f}: row {row}: grade {g!r} in column {gcol!r} is not an integer") from None
                    qrels.setdefault(str(q), {})[str(d)] = grade
            check_qrels(qrels, f, c.queries, c.corpus, drop_unknown_qrels)
            c.qrels[split], c.qrels_files[split] = qrels, f
        return c
