"""A retrieval collection in BEIR layout, loaded into memory.

Layout: ``corpus.jsonl`` (``{"_id", "title", "text"}``), ``queries.jsonl`` (``{"_id", "text"}``),
``qrels/{train,dev,test}.tsv`` (header ``query-id  corpus-id  score``). Training pairs are the
positive ``train`` qrels. An optional plain-text general corpus (one paragraph per line) feeds
masked-LM pretraining.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path


class DataError(ValueError):
    """Bad input data; the message names the file (and line) and what to do."""


@dataclass
class Collection:
    path: Path
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    general_path: Path | None = None

    def split(self, name: str) -> dict[str, dict[str, int]]:
        if name not in self.qrels:
            raise DataError(
                f"{self.path / 'qrels' / (name + '.tsv')}: no qrels for split {name!r}; "
                f"available: {sorted(self.qrels)}"
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

    def general_texts(self) -> list[str]:
        if self.general_path is None:
            raise DataError(
                f"{self.path}: no general corpus; set data.general_corpus to a text file "
                "(one paragraph per line)"
            )
        return read_lines(self.general_path)


def _check_readable(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(f"{path}: {what} not found; check data.path")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: {what} is not readable; check its permissions")


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    _check_readable(path, "file")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: malformed JSON ({err.msg}); fix or remove the line") from None
            missing = [k for k in required if k not in row]
            if missing:
                raise DataError(f"{path}:{lineno}: missing field(s) {missing}")
            rows.append(row)
    return rows


def read_lines(path: Path) -> list[str]:
    _check_readable(Path(path), "text corpus")
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def _read_texts(path: Path, kind: str) -> dict[str, str]:
    fields = ("_id", "text")
    texts: dict[str, str] = {}
    lines: dict[str, int] = {}
    for lineno, row in enumerate(read_jsonl(path, fields), 1):
        key = str(row["_id"])
        if key in texts:
            raise DataError(f"{path}: duplicate {kind} id {key!r}; ids must be unique")
        text = " ".join(str(row.get(k) or "") for k in ("title", "text")).strip()
        if not text:
            raise DataError(f"{path}: {kind} {key!r} is empty (no title or text)")
        texts[key] = text
        lines[key] = lineno
    if not texts:
        raise DataError(f"{path}: no {kind}s found")
    return texts


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    _check_readable(path, "qrels file")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        for lineno, row in enumerate(reader, 1):
            if not row or (lineno == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise DataError(f"{path}:{lineno}: expected 'query-id<TAB>corpus-id<TAB>score'")
            try:
                score = int(row[2])
            except ValueError:
                raise DataError(f"{path}:{lineno}: score {row[2]!r} is not an integer") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


def load_beir(path: str | os.PathLike, general_corpus: str | os.PathLike | None = None,
              drop_unknown_qrels: bool = False) -> Collection:
    """Load a BEIR-layout directory. ``general_corpus`` defaults to ``<path>/general.txt`` if present."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: collection directory not found; check data.path")
    corpus = _read_texts(path / "corpus.jsonl", "document")
    queries = _read_texts(path / "queries.jsonl", "query")
    qrels = {}
    qdir = path / "qrels"
    for f in sorted(qdir.glob("*.tsv")) if qdir.is_dir() else []:
        split = read_qrels(f)
        dropped = 0
        for qid in list(split):
            unknown = [did for did in split[qid] if did not in corpus]
            if qid not in queries or unknown:
                if not drop_unknown_qrels:
                    what = f"query id {qid!r}" if qid not in queries else f"document id {unknown[0]!r}"
                    raise DataError(
                        f"{f}: {what} is not in the collection; fix the file or set "
                        "data.drop_unknown_qrels=true to drop such judgments"
                    )
                dropped += len(split[qid]) if qid not in queries else len(unknown)
                if qid not in queries:
                    del split[qid]
                else:
                    for did in unknown:
                        del split[qid][did]
                    if not split[qid]:
                        del split[qid]
        if dropped:
            import logging

            logging.getLogger(__name__).warning("%s: dropped %d judgments with unknown ids", f, dropped)
        qrels[f.stem] = split
    if general_corpus is None and (path / "general.txt").exists():
        general_corpus = path / "general.txt"
    return Collection(path, corpus, queries, qrels, Path(general_corpus) if general_corpus else None)
