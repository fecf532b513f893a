"""A retrieval collection in memory, and the readers every source shares.

Every source (``conf/data/*.yaml``; :mod:`splade_exp.data.sources`) ends in the same
:class:`Collection`: ``corpus`` and ``queries`` (id -> text), ``qrels`` per split (query id ->
document id -> grade), optional hard ``negatives`` per training query, optional training-only
documents (``train_docs``: passages that come with text training triples and are not indexed),
optional ``teacher`` scores for distillation. Training pairs are the positive judgments of the
``train`` split.

BEIR layout: ``corpus.jsonl`` (``{"_id", "title", "text"}``), ``queries.jsonl`` (``{"_id",
"text"}``), ``qrels/{train,dev,test}.tsv`` (header ``query-id  corpus-id  score``; TREC's
four-column ``qid 0 docid grade`` is read too). An optional plain-text general corpus (one paragraph
per line) feeds masked-LM pretraining.

Readers stream: each line is parsed and stored once, so a large corpus is held in memory as one
dictionary of strings and nothing else. Every error names the file and line and says what to do.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger(__name__)


class DataError(ValueError):
    """Bad input data; the message names the file (and line) and what to do."""


@dataclass
class Collection:
    path: Path
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    general_path: Path | None = None
    negatives: dict[str, list[str]] = field(default_factory=dict)
    train_docs: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    qrels_files: dict[str, Path] = field(default_factory=dict)
    # teacher scores for distillation, query id -> doc id -> score, and the files they came from
    # (splade_exp/data/distillation.py)
    teacher: dict[str, dict[str, float]] = field(default_factory=dict)
    teacher_files: list[Path] = field(default_factory=list)

    def split(self, name: str) -> dict[str, dict[str, int]]:
        if name not in self.qrels:
            where = self.qrels_files.get(name, self.path / "qrels" / f"{name}.tsv")
            raise DataError(
                f"{where}: no qrels for split {name!r}; available: {sorted(self.qrels)}. "
                "Set data.eval_split to one of them or add the file"
            )
        return self.qrels[name]

    def train_pairs(self) -> list[tuple[str, str]]:
        """(query id, positive doc id) for every positive train judgment, in file order."""
        return [
            (qid, did)
            for qid, docs in self.split("train").items()
            for did, rel in docs.items()
            if rel > 0
        ]

    def document(self, did: str) -> str:
        """Text of an indexed or a training-only document."""
        text = self.corpus.get(did)
        return self.train_docs[did] if text is None else text

    def general_texts(self) -> list[str]:
        if self.general_path is None:
            raise DataError(
                f"{self.path}: no general corpus; set data.general_corpus to a text file "
                "(one paragraph per line)"
            )
        return read_lines(self.general_path)

    def key(self) -> dict:
        """What identifies this collection's content: its input files by path, size and mtime."""
        def stat(p: Path) -> list:
            st = p.stat()
            return [str(p.resolve()), st.st_size, st.st_mtime_ns]
        return {"files": [stat(p) for p in self.files if p.exists()], "qrels": sorted(self.qrels),
                "sizes": [len(self.corpus), len(self.queries), len(self.train_docs)]}


# --------------------------------------------------------------------------- file checks
def check_readable(path: str | os.PathLike, what: str, key: str = "data.path") -> Path:
    """``path`` as a Path, or a DataError saying which config key to fix."""
    path = Path(os.path.expanduser(str(path)))
    if not path.exists():
        raise DataError(f"{path}: {what} not found; check {key}")
    if path.is_dir():
        raise DataError(f"{path}: {what} is a directory, expected a file; check {key}")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: {what} is not readable; check its permissions (chmod +r)")
    return path




def open_text(path: Path):
    return open(path, encoding="utf-8", newline="")


def iter_jsonl(path: Path, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON-lines file."""
    path = check_readable(path, "file")
    with open_text(path) as fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{lineno}: malformed JSON ({err.msg} at column {err.colno}); "
                                    "fix or remove the line") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                missing = [k for k in required if k not in row]
                if missing:
                    raise DataError(f"{path}:{lineno}: missing field(s) {missing}; every line needs {list(required)}")
                yield lineno, row
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start} of a line); "
                            "re-encode the file as UTF-8") from None


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    return [row for _, row in iter_jsonl(Path(path), required)]


def iter_tsv(path: Path, min_fields: int, expected: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for every non-blank line of a tab-separated file (no quoting)."""
    path = check_readable(path, "file")
    with open_text(path) as fh:
        try:
            for lineno, line in enumerate(fh, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split("\t")
                if len(fields) < min_fields:
                    raise DataError(f"{path}:{lineno}: expected {expected} ({min_fields} tab-separated "
                                    f"fields), got {len(fields)}; fix or remove the line")
                yield lineno, fields
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason}); re-encode the file as UTF-8") from None


def read_lines(path: Path) -> list[str]:
    path = check_readable(Path(path), "text corpus", "data.general_corpus / pretrain.corpus / vocab.corpus")
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


# --------------------------------------------------------------------------- texts
class TextTable:
    """Collects id -> text from a stream, refusing duplicate ids and (unless dropped) empty texts.

    Nothing but the texts is kept: the first line of a duplicate id is found by re-reading the
    files, only when there is an error to report."""

    def __init__(self, kind: str, drop_empty: bool = False) -> None:
        self.kind, self.drop_empty = kind, drop_empty
        self.texts: dict[str, str] = {}
        self.empty: set[str] = set()
        self.read: list[tuple[Path, Callable[[str], str | None]]] = []

    def source(self, path: Path, id_of: Callable[[str], str | None]) -> None:
        """Declare the file being read and how to get an id from one of its lines."""
        self.read.append((path, id_of))

    def _first(self, key: str) -> str:
        for path, id_of in self.read:
            with open_text(path) as fh:
                for lineno, line in enumerate(fh, 1):
                    try:
                        if id_of(line) == key:
                            return f"{path.name}:{lineno}"
                    except (ValueError, KeyError, TypeError, AttributeError):
                        continue
        return "an earlier line"

    def add(self, key: str, text: str, path: Path, lineno: int) -> None:
        if key in self.texts or key in self.empty:
            raise DataError(f"{path}:{lineno}: duplicate {self.kind} id {key!r} (first at {self._first(key)}); "
                            "ids must be unique: remove or rename one of them")
        text = " ".join(text.split())
        if not text:
            if not self.drop_empty:
                raise DataError(f"{path}:{lineno}: {self.kind} {key!r} is empty; give it text, remove the line, or "
                                "set data.drop_empty=true to drop empty texts (judgments naming them then need "
                                "data.drop_unknown_qrels=true)")
            self.empty.add(key)
            return
        self.texts[key] = text

    def done(self, path: Path) -> dict[str, str]:
        if self.empty:
            log.warning("%s: dropped %d empty %ss (data.drop_empty=true)", path, len(self.empty), self.kind)
        if not self.texts:
            raise DataError(f"{path}: no {self.kind}s found; check that the file is the right one")
        return self.texts


def _jsonl_id(field_name: str) -> Callable[[str], str | None]:
    return lambda line: str(json.loads(line)[field_name])


def _tsv_id(line: str) -> str:
    return line.split("\t", 1)[0].strip()


def read_texts_jsonl(path: Path, kind: str, drop_empty: bool = False, id_field: str = "_id",
                     text_fields: tuple[str, ...] = ("title", "text")) -> dict[str, str]:
    """id -> text of a JSON-lines file; the text joins ``text_fields`` (missing ones are empty)."""
    path = Path(path)
    table = TextTable(kind, drop_empty)
    table.source(path, _jsonl_id(id_field))
    for lineno, row in iter_jsonl(path, (id_field,)):
        if not any(f in row for f in text_fields):
            raise DataError(f"{path}:{lineno}: none of the text fields {list(text_fields)} is present")
        text = " ".join(str(row.get(f) or "") for f in text_fields)
        table.add(str(row[id_field]), text, path, lineno)
    return table.done(path)


def read_texts_tsv(path: Path, kind: str, drop_empty: bool = False, table: TextTable | None = None) -> dict[str, str]:
    """id -> text of an ``id<TAB>text`` file (MS MARCO's collection.tsv and queries.*.tsv)."""
    path = Path(path)
    own = table is None
    table = table or TextTable(kind, drop_empty)
    table.source(path, _tsv_id)
    for lineno, fields in iter_tsv(path, 2, "id<TAB>text"):
        table.add(fields[0].strip(), " ".join(fields[1:]), path, lineno)
    return table.done(path) if own else table.texts




# --------------------------------------------------------------------------- qrels
QRELS_HEADER = ("query-id", "corpus-id", "score")


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> doc id -> grade from BEIR (``query-id<TAB>corpus-id<TAB>score``, optional header)
    or TREC (``qid iteration docid grade``, whitespace-separated) qrels."""
    path = check_readable(Path(path), "qrels file")
    qrels: dict[str, dict[str, int]] = {}
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            row = line.split("\t") if "\t" in line else line.split()
            row = [c.strip() for c in row]
            if not any(row):
                continue
            if lineno == 1 and row[0].lower() in ("query-id", "query_id", "qid"):
                continue
            if len(row) == 3:
                qid, did, grade = row
            elif len(row) == 4:
                qid, _, did, grade = row
            else:
                raise DataError(f"{path}:{lineno}: expected 'query-id<TAB>corpus-id<TAB>score' (BEIR) or "
                                f"'qid 0 docid grade' (TREC), got {len(row)} fields")
            try:
                score = int(grade)
            except ValueError:
                raise DataError(f"{path}:{lineno}: score {grade!r} is not an integer") from None
            qrels.setdefault(qid, {})[did] = score
    return qrels


def _qrels_line(path: Path, qid: str, did: str | None) -> str:
    """``path:line`` of the first judgment of ``qid`` (and ``did``), for error messages."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            row = line.split()
            if row and row[0] == qid and (did is None or did in row[1:3]):
                return f"{path}:{lineno}"
    return str(path)


def check_qrels(qrels: dict[str, dict[str, int]], path: Path, queries, corpus, drop: bool,
                what: str = "judgments") -> int:
    """Enforce that every judged query and document exists; with ``drop`` remove the others.

    Returns the number of dropped judgments (logged as a warning)."""
    dropped = 0
    for qid in list(qrels):
        if qid not in queries:
            if not drop:
                raise DataError(f"{_qrels_line(path, qid, None)}: query id {qid!r} is not in the queries; fix the "
                                f"file or set data.drop_unknown_qrels=true to drop such {what}")
            dropped += len(qrels.pop(qid))
            continue
        docs = qrels[qid]
        for did in [d for d in docs if d not in corpus]:
            if not drop:
                raise DataError(f"{_qrels_line(path, qid, did)}: document id {did!r} is not in the corpus; fix the "
                                f"file or set data.drop_unknown_qrels=true to drop such {what}")
            del docs[did]
            dropped += 1
        if not docs:
            del qrels[qid]
    if dropped:
        log.warning("%s: dropped %d %s with unknown query or document ids (data.drop_unknown_qrels=true)",
                    path, dropped, what)
    return dropped


def load_beir(path: str | os.PathLike, general_corpus: str | os.PathLike | None = None,
              drop_unknown_qrels: bool = False, drop_empty: bool = False) -> Collection:
    """Load a BEIR-layout directory. ``general_corpus`` defaults to ``<path>/general.txt`` if present."""
    path = Path(os.path.expanduser(str(path)))
    if not path.is_dir():
        raise DataError(f"{path}: collection directory not found; check data.path")
    corpus = read_texts_jsonl(path / "corpus.jsonl", "document", drop_empty)
    queries = read_texts_jsonl(path / "queries.jsonl", "query", drop_empty, text_fields=("text",))
    collection = Collection(path, corpus, queries, files=[path / "corpus.jsonl", path / "queries.jsonl"])
    qdir = path / "qrels"
    for f in sorted(qdir.glob("*.tsv")) if qdir.is_dir() else []:
        add_qrels(collection, f.stem, f, drop_unknown_qrels)
    set_general_corpus(collection, general_corpus)
    return collection


def add_qrels(collection: Collection, split: str, path: Path, drop_unknown: bool) -> None:
    qrels = read_qrels(path)
    check_qrels(qrels, path, collection.queries, collection.corpus, drop_unknown)
    collection.qrels[split] = qrels
    collection.qrels_files[split] = path
    collection.files.append(path)


def set_general_corpus(collection: Collection, general_corpus: str | os.PathLike | None) -> None:
    if general_corpus is None and (collection.path / "general.txt").exists():
        general_corpus = collection.path / "general.txt"
    if general_corpus is not None:
        collection.general_path = check_readable(general_corpus, "general corpus", "data.general_corpus")
        collection.files.append(collection.general_path)


def resolve(base: Path | None, name: str | os.PathLike, key: str, what: str = "file") -> Path:
    """``name`` relative to ``base`` (unless absolute), checked readable; errors name ``key``."""
    p = Path(os.path.expanduser(str(name)))
    if base is not None and not p.is_absolute():
        p = base / p
    return check_readable(p, what, key)
