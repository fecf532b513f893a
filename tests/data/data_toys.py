"""One toy collection written in every on-disk format the loaders read."""
from __future__ import annotations

import json
from pathlib import Path

DOCS = {  # id -> (title, text)
    "d1": ("Aspirin", "aspirin reduces fever and pain"),
    "d2": ("Statins", "statins lower cholesterol in adults"),
    "d3": ("Insulin", "insulin regulates blood sugar"),
    "007": ("Vitamin D", "vitamin d supports bone health"),
    "d5": ("", "sleep improves memory consolidation"),
}
QUERIES = {"q1": "does aspirin reduce fever", "q2": "statins and cholesterol", "q3": "what regulates blood sugar",
           "q4": "vitamin d and bones"}
QRELS = {"train": {"q1": {"d1": 1}, "q2": {"d2": 1}}, "test": {"q3": {"d3": 1}, "q4": {"007": 2, "d5": 0}}}


def doc_text(did: str) -> str:
    return " ".join(" ".join(DOCS[did]).split())


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_beir(root: Path, trec_split: str | None = None) -> Path:
    """BEIR layout; ``trec_split``'s qrels in TREC's four-column form instead of BEIR's."""
    write_jsonl(root / "corpus.jsonl", [{"_id": k, "title": t, "text": x} for k, (t, x) in DOCS.items()])
    write_jsonl(root / "queries.jsonl", [{"_id": k, "text": v} for k, v in QUERIES.items()])
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    for split, qrels in QRELS.items():
        if split == trec_split:
            lines = [f"{q} 0 {d} {g}\n" for q, docs in qrels.items() for d, g in docs.items()]
        else:
            lines = ["query-id\tcorpus-id\tscore\n"] + [f"{q}\t{d}\t{g}\n" for q, docs in qrels.items()
                                                         for d, g in docs.items()]
        (root / "qrels" / f"{split}.tsv").write_text("".join(lines))
    return root


def write_msmarco(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "collection.tsv").write_text("".join(f"{k}\t{doc_text(k)}\n" for k in DOCS))
    train_q = {k: v for k, v in QUERIES.items() if k in QRELS["train"]}
    (root / "queries.train.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in train_q.items()))
    (root / "queries.dev.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in QUERIES.items() if k not in train_q))
    for split, name in (("train", "qrels.train.tsv"), ("test", "qrels.dev.tsv")):
        (root / name).write_text("".join(f"{q}\t0\t{d}\t{g}\n" for q, docs in QRELS[split].items()
                                         for d, g in docs.items()))
    return root
