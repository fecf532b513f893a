"""Teacher scores for distillation: a score per (query, document) that training can sample.

SPLADE++ trains on a query's positive and hard negatives with a teacher's (a cross-encoder's)
scores for each of them (MarginMSE, KL: :mod:`splade_exp.losses`). Two formats, set in the ``data``
group for any source (names relative to the collection's directory, ``data.path``, unless absolute;
a gzip file is recognised by its first bytes, whatever its name):

- ``data.teacher_scores``: ``qid pid score`` lines, tab- or space-separated (e.g. the MS MARCO
  cross-encoder scores files), for the training pairs and hard negatives the collection already has
  (MS MARCO id triples ``data.source.triples``, a BEIR train split, ...). Only scores of pairs
  training can sample are kept, so a file scoring far more pairs costs reading time, not memory.
- ``data.distillation``: JSON lines ``{"qid": ..., "pos": [[pid, score], ...], "neg": [[pid,
  score], ...]}``. Every ``pos`` pair joins the ``train`` split, every ``neg`` document becomes a
  hard negative of the query (``data.num_negatives`` samples from them), and all scores are kept.

After reading, every training pair and (with ``data.num_negatives`` > 0) every hard negative of a
training query must have a score: a missing one is an error naming the file and a pair, before any
model is built. A malformed line is an error naming the file and its 1-based line.
"""
from __future__ import annotations

import gzip
import json
import logging
import math
from pathlib import Path
from typing import Iterator

from splade_exp.data.collection import Collection, DataError, check_readable, resolve

log = logging.getLogger(__name__)

HEADER_IDS = ("qid", "query_id", "query-id")


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of the non-blank lines of a text file, gzip or not."""
    path = check_readable(path, "file")
    try:
        with _open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    yield lineno, line.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason}); re-encode the file as UTF-8") from None
    except (gzip.BadGzipFile, EOFError) as err:
        raise DataError(f"{path}: damaged gzip file ({err}); download or compress it again") from None


def _score(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(f"{where}: score {value!r} is not a number")
    try:
        score = float(value)
    except ValueError:
        raise DataError(f"{where}: score {value!r} is not a number") from None
    if not math.isfinite(score):
        raise DataError(f"{where}: score {value!r} is not a finite number")
    return score


def _set(teacher: dict, qid: str, did: str, score: float, where: str) -> None:
    old = teacher.setdefault(qid, {}).get(did)
    if old is not None and old != score:
        raise DataError(f"{where}: query {qid!r} and document {did!r} were scored {old} before; one score per "
                        "pair: remove one of the lines")
    teacher[qid][did] = score


def sampled_pairs(c: Collection, with_negatives: bool = True) -> Iterator[tuple[str, str]]:
    """(query, document) pairs training can sample: training pairs and their queries' hard negatives."""
    for qid, did in c.train_pairs():
        yield qid, did
    if with_negatives:
        for qid in c.split("train"):
            for nid in c.negatives.get(qid, ()):
                yield qid, nid


def read_teacher_scores(c: Collection, path: Path) -> int:
    """Add the ``qid pid score`` lines of ``path`` that name a sampled pair to ``c.teacher``.

    Returns the number of scores kept."""
    path = Path(path)
    wanted: dict[str, set[str]] = {}
    for qid, did in sampled_pairs(c):
        wanted.setdefault(qid, set()).add(did)
    kept = 0
    for lineno, line in iter_lines(path):
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        where = f"{path}:{lineno}"
        if lineno == 1 and fields and fields[0].lower() in HEADER_IDS:
            continue
        if len(fields) != 3:
            raise DataError(f"{where}: expected 'qid pid score' (3 tab- or space-separated fields), got "
                            f"{len(fields)}; fix or remove the line")
        qid, did, value = fields
        score = _score(value, where)
        if did in wanted.get(qid, ()):
            _set(c.teacher, qid, did, score, where)
            kept += 1
    c.teacher_files.append(path)
    c.files.append(path)
    log.info("%s: %d teacher scores of sampled pairs", path, kept)
    return kept


def _pairs(row: dict, field: str, where: str) -> list[tuple[str, float]]:
    value = row.get(field, [])
    ok = isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int))
                                         and not isinstance(p[0], bool) for p in value)
    if not ok:
        raise DataError(f"{where}: {field!r} must be a list of [doc id, score] pairs, got {value!r:.200}")
    return [(str(p[0]), _score(p[1], f"{where}: {field!r}")) for p in value]


def read_distillation(c: Collection, path: Path, drop_unknown: bool = False) -> int:
    """Add the JSON lines of ``path`` to ``c``: training pairs, hard negatives and teacher scores.

    Returns the number of lines read. Unknown query or document ids are errors, or with
    ``drop_unknown`` (``data.drop_unknown_qrels``) the line / pair is dropped and counted."""
    path = Path(path)
    train = c.qrels.setdefault("train", {})
    c.qrels_files.setdefault("train", path)
    n = dropped = 0
    for lineno, line in iter_lines(path):
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: malformed JSON ({err.msg} at column {err.colno}); fix or remove the line") from None
        if not isinstance(row, dict) or "qid" not in row or "pos" not in row:
            raise DataError(f'{where}: expected an object {{"qid", "pos": [[pid, score], ...], "neg": [[pid, '
                            f'score], ...]}}, got {line[:200]!r}')
        qid = str(row["qid"])
        pos, neg = _pairs(row, "pos", where), _pairs(row, "neg", where)
        if not pos:
            raise DataError(f"{where}: 'pos' is empty; every line needs at least one positive [pid, score]")
        n += 1
        if qid not in c.queries:
            if not drop_unknown:
                raise DataError(f"{where}: query id {qid!r} is not in the queries; fix the file or set "
                                "data.drop_unknown_qrels=true to drop such lines")
            dropped += 1
            continue
        known = [(did, s) for did, s in pos + neg if did in c.corpus or did in c.train_docs]
        if len(known) < len(pos) + len(neg):
            missing = next(did for did, _ in pos + neg if did not in c.corpus and did not in c.train_docs)
            if not drop_unknown:
                raise DataError(f"{where}: document id {missing!r} is not in the corpus; fix the file or set "
                                "data.drop_unknown_qrels=true to drop such pairs")
            dropped += len(pos) + len(neg) - len(known)
        for did, score in known:
            _set(c.teacher, qid, did, score, where)
        docs = {did for did, _ in known}
        for did, _ in pos:
            if did in docs:
                train.setdefault(qid, {}).setdefault(did, 1)
        negs = c.negatives.setdefault(qid, [])
        for did, _ in neg:
            if did in docs and did not in negs:
                negs.append(did)
    if dropped:
        log.warning("%s: dropped %d lines or pairs with unknown ids (data.drop_unknown_qrels=true)", path, dropped)
    c.teacher_files.append(path)
    c.files.append(path)
    return n


def check_teacher(c: Collection, num_negatives: int) -> None:
    """Every pair training can sample has a teacher score (see the module doc)."""
    if num_negatives > 0:
        bare = [q for q in c.split("train") if not c.negatives.get(q)]
        if bare:
            raise DataError(f"{_files(c)}: {len(bare)} training queries have no hard negative, e.g. {bare[0]!r}; "
                            "with teacher scores the negatives must be scored hard negatives, not random documents: "
                            "give every training query negatives (or set data.num_negatives=0)")
    missing = [(q, d) for q, d in sampled_pairs(c, num_negatives > 0) if d not in c.teacher.get(q, {})]
    if missing:
        q, d = missing[0]
        raise DataError(f"{_files(c)}: no teacher score for {len(missing)} (query, document) pairs training can "
                        f"sample, e.g. query {q!r} and document {d!r}; score every training pair and hard negative "
                        "(or remove those pairs)")


def _files(c: Collection) -> str:
    return ", ".join(str(p) for p in c.teacher_files) or str(c.path)


def teacher_row(c: Collection, qid: str, dids: list[str]) -> list[float]:
    """The teacher's scores of ``qid`` with each of ``dids`` (a sampled positive and its negatives)."""
    scores = c.teacher.get(qid, {})
    for did in dids:
        if did not in scores:
            raise DataError(f"{_files(c)}: no teacher score for the sampled pair query {qid!r}, document {did!r}; "
                            "score every training pair and hard negative")
    return [scores[did] for did in dids]


def add_teacher(c: Collection, data) -> None:
    """Read ``data.distillation`` and ``data.teacher_scores`` (if set) into ``c`` and check coverage."""
    for key, read in (("distillation", lambda p: read_distillation(c, p, bool(data.get("drop_unknown_qrels")))),
                      ("teacher_scores", lambda p: read_teacher_scores(c, p))):
        name = data.get(key)
        if name:
            hint = " (for data=synthetic set data.source.n_teacher_negatives>0)" if key == "distillation" else ""
            try:
                path = resolve(c.path, name, f"data.{key}")
            except DataError as err:
                raise DataError(f"{err}{hint}") from None
            read(path)
    if c.teacher_files:
        check_teacher(c, int(data.get("num_negatives") or 0))
