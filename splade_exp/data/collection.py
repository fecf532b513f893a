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
dictionary of strings and nothing else. Every error names the file and its 1-based line and says
what to do, and no malformed value is read as data: malformed JSON or TSV lines, JSON values of
the wrong type (ids are strings or integers, texts strings or null), empty ids, bytes that are not
UTF-8, duplicate ids, a judgment repeated with another grade, an unfamiliar header line. Empty
texts are kept, with a warning that counts them, unless ``data.drop_empty=true``.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from splade_exp.errors import SpladeExpError

log = logging.getLogger(__name__)


class DataError(SpladeExpError, ValueError):
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
    options: dict = field(default_factory=dict)  # loading options applied (sources.load_collection)
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
        """What identifies this collection's content (the tokens artifact's key): the content of its
        input files (:mod:`splade_exp.fingerprint`), the loading options that changed what was read
        from them, and the sizes of what came out."""
        from splade_exp.fingerprint import fingerprint

        train = self.qrels.get("train", {})
        return {"files": [fingerprint(p) for p in self.files], "options": dict(sorted(self.options.items())),
                "qrels": sorted(self.qrels),
                "sizes": [len(self.corpus), len(self.queries), len(self.train_docs), len(train)]}


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




def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without its line ending) of every line of a UTF-8 file.

    Lines are split on ``\\n`` (as ``wc -l`` counts them) and decoded one at a time, so a byte
    that is not UTF-8 is reported with its line and column; a leading byte-order mark is dropped."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column "
                                f"{err.start + 1}); re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield lineno, line.rstrip("\r\n")


def iter_jsonl(path: Path, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON-lines file."""
    path = check_readable(path, "file")
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: malformed JSON ({err.msg} at column {err.colno}); "
                            "fix or remove the line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {_json_type(row)}")
        missing = [k for k in required if k not in row]
        if missing:
            raise DataError(f"{path}:{lineno}: missing field(s) {missing}; every line needs {list(required)}")
        yield lineno, row


def _json_type(value) -> str:
    return {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def json_id(row: dict, name: str, path: Path, lineno: int) -> str:
    """The id in field ``name``: a non-empty string or an integer (read as its decimal string)."""
    value = row.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(f"{path}:{lineno}: field {name!r} must be a string or an integer id, got "
                        f"{_json_type(value)} ({json.dumps(value)[:40]}); fix the line")
    if not value.strip():
        raise DataError(f"{path}:{lineno}: field {name!r} is an empty id; give it a value or remove the line")
    return value.strip()


def json_text(row: dict, names: tuple[str, ...], path: Path, lineno: int) -> str:
    """``names``' strings joined by a space; a missing or null field is empty, any other type an error."""
    parts = []
    for name in names:
        value = row.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise DataError(f"{path}:{lineno}: field {name!r} must be a string (or null), got {_json_type(value)} "
                            f"({json.dumps(value)[:40]}); fix the line")
        parts.append(value)
    return " ".join(parts)


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    return [row for _, row in iter_jsonl(Path(path), required)]


def iter_tsv(path: Path, min_fields: int, expected: str, max_fields: int | None = None) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for every non-blank line of a tab-separated file (no quoting)."""
    path = check_readable(path, "file")
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < min_fields or (max_fields is not None and len(fields) > max_fields):
            want = min_fields if max_fields in (None, min_fields) else f"{min_fields} to {max_fields}"
            raise DataError(f"{path}:{lineno}: expected {expected} ({want} tab-separated fields), got "
                            f"{len(fields)}; fix or remove the line")
        yield lineno, fields


def read_lines(path: Path) -> list[str]:
    """The non-blank lines of a text corpus (one paragraph a line), stripped."""
    path = check_readable(Path(path), "text corpus", "data.general_corpus / pretrain.corpus / vocab.corpus")
    return [line.strip() for _, line in iter_lines(path) if line.strip()]


# --------------------------------------------------------------------------- texts
class TextTable:
    """Collects id -> text from a stream, refusing duplicate and empty ids.

    Empty texts (an abstract-less paper, a blank passage) are kept by default, as the collection
    has them: they are indexed, score zero against every query unless their vector is not empty,
    and a warning counts them. ``drop_empty`` drops them instead (judgments naming them then need
    ``data.drop_unknown_qrels=true``). Nothing but the texts is kept: the first line of a
    duplicate id is found by re-reading the files, only when there is an error to report."""

    def __init__(self, kind: str, drop_empty: bool = False) -> None:
        self.kind, self.drop_empty = kind, drop_empty
        self.texts: dict[str, str] = {}
        self.empty: list[str] = []
        self.dropped: set[str] = set()
        self.read: list[tuple[Path, Callable[[str], str | None]]] = []

    def source(self, path: Path, id_of: Callable[[str], str | None]) -> None:
        """Declare the file being read and how to get an id from one of its lines."""
        self.read.append((path, id_of))

    def _first(self, key: str) -> str:
        for path, id_of in self.read:
            for lineno, line in iter_lines(path):
                try:
                    if id_of(line) == key:
                        return f"{path.name}:{lineno}"
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
        return "an earlier line"

    def add(self, key: str, text: str, path: Path, lineno: int | str) -> None:
        if not key:
            raise DataError(f"{path}:{lineno}: empty {self.kind} id; give it a value or remove the line")
        if key in self.texts or key in self.dropped:
            raise DataError(f"{path}:{lineno}: duplicate {self.kind} id {key!r} (first at {self._first(key)}); "
                            "ids must be unique: remove or rename one of them")
        text = " ".join(text.split())
        if not text:
            if self.drop_empty:
                self.dropped.add(key)
                return
            self.empty.append(key)
        self.texts[key] = text

    def done(self, path: Path) -> dict[str, str]:
        if self.dropped:
            log.warning("%s: dropped %d empty %ss (data.drop_empty=true)", path, len(self.dropped), self.kind)
        if self.empty:
            shown = ", ".join(repr(k) for k in self.empty[:5]) + (", ..." if len(self.empty) > 5 else "")
            log.warning("%s: %d empty %ss kept (%s); they are encoded as empty texts. Set data.drop_empty=true "
                        "to drop them", path, len(self.empty), self.kind, shown)
        if not self.texts:
            raise DataError(f"{path}: no {self.kind}s found; check that the file is the right one")
        return self.texts


def _jsonl_id(field_name: str) -> Callable[[str], str | None]:
    return lambda line: str(json.loads(line)[field_name]).strip()


def _tsv_id(line: str) -> str:
    return line.split("\t", 1)[0].strip()


def read_texts_jsonl(path: Path, kind: str, drop_empty: bool = False, id_field: str = "_id",
                     text_fields: tuple[str, ...] = ("title", "text")) -> dict[str, str]:
    """id -> text of a JSON-lines file; the text joins ``text_fields`` (missing or null ones are empty).

    Ids are strings or integers; texts strings or null: any other JSON type is an error naming
    the line, never read as text (``str([1, 2])`` would be)."""
    path = Path(path)
    table = TextTable(kind, drop_empty)
    table.source(path, _jsonl_id(id_field))
    for lineno, row in iter_jsonl(path, (id_field,)):
        if not any(f in row for f in text_fields):
            raise DataError(f"{path}:{lineno}: none of the text fields {list(text_fields)} is present")
        table.add(json_id(row, id_field, path, lineno), json_text(row, text_fields, path, lineno), path, lineno)
    return table.done(path)


def read_texts_tsv(path: Path, kind: str, drop_empty: bool = False, table: TextTable | None = None) -> dict[str, str]:
    """id -> text of an ``id<TAB>text`` file (MS MARCO's collection.tsv and queries.*.tsv); a tab
    inside the text is read as a space."""
    path = Path(path)
    own = table is None
    table = table or TextTable(kind, drop_empty)
    table.source(path, _tsv_id)
    for lineno, fields in iter_tsv(path, 2, "id<TAB>text"):
        table.add(fields[0].strip(), " ".join(fields[1:]), path, lineno)
    return table.done(path) if own else table.texts


# --------------------------------------------------------------------------- qrels
QRELS_HEADER = ("query-id", "corpus-id", "score")
#: First fields of a qrels header line that the readers skip (BEIR's and common variants).
QUERY_ID_HEADERS = ("query-id", "query_id", "queryid", "qid", "topic", "topic_id")


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> doc id -> grade from BEIR (``query-id<TAB>corpus-id<TAB>score``, optional header)
    or TREC (``qid iteration docid grade``, whitespace-separated) qrels.

    Grades are integers. A judgment repeated with the same grade is read once (and counted in a
    warning); with another grade it is an error naming both lines. A first line whose grade is
    not an integer is a header: one starting with a query-id name (:data:`QUERY_ID_HEADERS`) is
    skipped, any other is refused rather than guessed at."""
    path = check_readable(Path(path), "qrels file")
    qrels: dict[str, dict[str, int]] = {}
    repeated, first = 0, True
    for lineno, line in iter_lines(path):
        row = [c.strip() for c in (line.split("\t") if "\t" in line else line.split())]
        if not any(row):
            continue
        header, first = first and len(row) in (3, 4) and not _is_int(row[-1]), False
        if header:
            if row[0].lower() in QUERY_ID_HEADERS:
                continue
            raise DataError(f"{path}:{lineno}: {row} is neither a judgment (its score {row[-1]!r} is not an "
                            f"integer) nor a known header; BEIR qrels start with '{chr(9).join(QRELS_HEADER)}' "
                            "or have no header, TREC qrels have none. Fix or remove the line")
        if len(row) == 3:
            qid, did, grade = row
        elif len(row) == 4:
            qid, _, did, grade = row
        else:
            raise DataError(f"{path}:{lineno}: expected 'query-id<TAB>corpus-id<TAB>score' (BEIR) or "
                            f"'qid 0 docid grade' (TREC), got {len(row)} fields")
        if not qid or not did:
            raise DataError(f"{path}:{lineno}: empty {'query' if not qid else 'document'} id; fix or remove the line")
        if not _is_int(grade):
            raise DataError(f"{path}:{lineno}: score {grade!r} is not an integer")
        score, docs = int(grade), qrels.setdefault(qid, {})
        if did in docs:
            if docs[did] != score:
                raise DataError(f"{path}:{lineno}: query {qid!r}, document {did!r} judged {score} here and "
                                f"{docs[did]} at {_qrels_line(path, qid, did)}; keep one judgment")
            repeated += 1
            continue
        docs[did] = score
    if repeated:
        log.warning("%s: %d judgments repeated with the same grade, read once", path, repeated)
    return qrels


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


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
