"""Local files read through the Hugging Face ``datasets`` library (``data=hf``).

Corpus, queries and qrels may each be JSON lines, JSON, Parquet or CSV/TSV (the builder is chosen
by each file's extension, ``.tsv`` meaning tab-separated CSV, or forced with
``data.source.format``). ``datasets`` converts each file once into a memory-mapped Arrow cache
under ``<artifacts_dir>/hf_datasets`` that every later job reads without parsing again; the
rows are then streamed in batches into the collection's dictionaries. Only local files are read:
nothing is downloaded.

Columns are named in the config: ``doc_id`` and ``doc_text`` (a list of columns joined with a
space, e.g. ``[title, text]``), ``query_id`` and ``query_text``, and ``qrels_columns``
``[query id, document id, grade]``. Ids are strings or integers (compared as strings), texts
strings or null, grades integers; any other cell (a null id, a float id, a list as text) is an
error naming the file and the row's line (``row N`` in Parquet), never read as data. For a CSV/TSV
every column is read as a string, so ids such as ``007`` keep their zeros.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from splade_exp.data.collection import Collection, DataError, TextTable, check_qrels, iter_lines, resolve

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
        first = next((line for _, line in iter_lines(path) if line.strip()), "")
        header = next(csv.reader([first], delimiter="\t" if tsv else ","), [])
        kwargs = {"delimiter": "\t" if tsv else ",", "keep_default_na": False,
                  "features": datasets.Features({c: datasets.Value("string") for c in header})}
        if tsv:
            kwargs["quoting"] = csv.QUOTE_NONE
    return name, kwargs


def _bad_line(path: Path, name: str) -> str | None:
    """The message of the first line that is not UTF-8 (any text format) or not JSON (JSON lines)."""
    if name == "parquet" or (name == "json" and path.suffix.lower() != ".jsonl"):
        return None
    try:
        for lineno, line in iter_lines(path):
            if name == "json" and line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as err:
                    return f"{path}:{lineno}: malformed JSON ({err.msg} at column {err.colno})"
    except DataError as err:
        return str(err)
    return None


def where(path: Path, row: int) -> str:
    """``path:line`` of data row ``row`` (1-based) of a JSON-lines or CSV/TSV file (blank lines and
    the CSV header skipped, as the readers skip them); ``path: row N`` for Parquet and JSON."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".csv", ".tsv"):
        target = row + (0 if suffix == ".jsonl" else 1)
        seen = 0
        for lineno, line in iter_lines(path):
            seen += bool(line.strip())
            if seen == target:
                return f"{path}:{lineno}"
    return f"{path}: row {row}"


def read_table(path: Path, forced: str | None, cache_dir: Path | None, columns: list[str], key: str):
    """A ``datasets.Dataset`` of ``path`` with ``columns`` checked present."""
    import datasets

    name, kwargs = _builder(path, forced)
    try:
        ds = datasets.load_dataset(name, data_files=str(path), split="train",
                                   cache_dir=str(cache_dir) if cache_dir else None, **kwargs)
    except Exception as err:  # datasets/pyarrow raise many types; name the file and the line if we can
        bad = _bad_line(path, name)
        raise DataError(f"{bad or path}: cannot be read as {name} ({type(err).__name__}: {str(err)[:300]}); fix the "
                        "file or set data.source.format") from None
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataError(f"{path}: no column(s) {missing} (it has {ds.column_names}); set {key} to the right names")
    return ds


def _id(value, path: Path, row: int, column: str) -> str:
    """An id cell: a non-empty string or an integer; null, floats and other types are errors."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise DataError(f"{where(path, row)}: column {column!r} must hold a string or integer id, got {value!r}; fix "
                    "the row")


def _text(value, path: Path, row: int, column: str) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    raise DataError(f"{where(path, row)}: column {column!r} must hold text (or null), got {type(value).__name__} "
                    f"{value!r:.40}; fix the row or name another column")


def _grade(value, path: Path, row: int, column: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise DataError(f"{where(path, row)}: grade {value!r} in column {column!r} is not an integer")


def _texts(ds, path: Path, kind: str, id_col: str, text_cols: list[str], drop_empty: bool) -> dict[str, str]:
    table = TextTable(kind, drop_empty)
    row = 0
    for batch in ds.select_columns([id_col, *text_cols]).iter(batch_size=10_000):
        for i, key in enumerate(batch[id_col]):
            r = row + i + 1
            text = " ".join(_text(batch[c][i], path, r, c) for c in text_cols)
            table.add(_id(key, path, r, id_col), text, path, r)
        row += len(batch[id_col])
    return table.done(path)
class HfFiles:
    PATH_OPTIONS = ("path", "corpus", "queries", "qrels")

    def __init__(self, corpus: str, queries: str, qrels: dict[str, str] | None = None, path: str | None = None,
                 format: str | None = None, doc_id: str = "_id", doc_text: list[str] | str = ("title", "text"),
                 query_id: str = "_id", query_text: list[str] | str = ("text",),
                 qrels_columns: list[str] = ("query-id", "corpus-id", "score"),
                 cache_dir: str | os.PathLike | None = None) -> None:
        base = self.path = Path(os.path.expanduser(str(path))) if path else None
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

    def files(self) -> dict[str, Path]:
        return {"corpus": self.corpus, "queries": self.queries, **{f"qrels/{s}": f for s, f in self.qrels.items()}}

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
            first: dict[tuple[str, str], int] = {}
            row = 0
            for batch in ds.select_columns(self.qrels_columns).iter(batch_size=50_000):
                for q, d, g in zip(batch[qcol], batch[dcol], batch[gcol]):
                    row += 1
                    q, d, grade = _id(q, f, row, qcol), _id(d, f, row, dcol), _grade(g, f, row, gcol)
                    docs = qrels.setdefault(q, {})
                    if d in docs and docs[d] != grade:
                        raise DataError(f"{where(f, row)}: query {q!r}, document {d!r} judged {grade} here and "
                                        f"{docs[d]} at {where(f, first[q, d])}; keep one judgment")
                    first.setdefault((q, d), row)
                    docs[d] = grade
            check_qrels(qrels, f, c.queries, c.corpus, drop_unknown_qrels)
            c.qrels[split], c.qrels_files[split] = qrels, f
        return c
