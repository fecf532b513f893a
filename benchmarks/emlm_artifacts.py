"""EMLM artifacts of a runs root side by side: per pretraining configuration, the mean and the
seed-to-seed spread of the validation accuracy (at step 0 and at the end), the validation loss,
the context-free bound of the validation words and the EMLM statistics; and per figure whether the
configurations differ by more than their spread.

    python -m splade_exp +experiment=pretrain_study_demo -m stage=pretrain seed=0,1
    python benchmarks/emlm_artifacts.py runs --json benchmarks/results/pretrain_study_demo_emlm.json

Reads ``<root>/artifacts/emlm/emlm-*/{key.json,stats.json}`` (the artifacts ``stage=pretrain`` and
the fine-tuning jobs publish); a configuration is the artifact key's ``pretrain`` values that the
sweep varies (``corpus``, ``repetition``, ``lr``, ``steps``) and the ``vocab``/``init``; the seed is
what the spread is taken over.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import loadavg, machine  # noqa: E402

from splade_exp.analysis.tables import to_markdown  # noqa: E402

FIGURES = ("accuracy_step0", "accuracy", "gain", "val_loss", "val_prior_accuracy", "val_prior_loss",
           "non-neg-terms-avg", "doc-score-avg@10", "logit-score-std")
CONFIG = ("corpus", "repetition", "lr", "steps")


def artifact_rows(root: Path) -> pd.DataFrame:
    rows = []
    for directory in sorted((root / "artifacts" / "emlm").glob("emlm-*")):
        key_file, stats_file = directory / "key.json", directory / "stats.json"
        if not (key_file.exists() and stats_file.exists()):
            continue
        key, stats = json.loads(key_file.read_text()), json.loads(stats_file.read_text())
        p = key["pretrain"]
        row = {"artifact": directory.name, "seed": key.get("seed"), **{c: p.get(c) for c in CONFIG},
               "vocab": json.dumps(key.get("vocab"), sort_keys=True), "init": json.dumps(key.get("init"), sort_keys=True)}
        row.update({f: stats.get(f) for f in FIGURES if f != "gain"})
        if stats.get("accuracy") is not None and stats.get("accuracy_step0") is not None:
            row["gain"] = stats["accuracy"] - stats["accuracy_step0"]
        rows.append(row)
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(per configuration: n seeds, mean and sd of each figure; per figure: how many pairs of
    configurations lie apart, i.e. every seed of one above every seed of the other, of how many;
    also among pairs on the same corpus, whose validation texts are alike)."""
    by = [*CONFIG, "vocab", "init"]
    figures = [f for f in FIGURES if f in rows and rows[f].notna().any()]
    grouped = rows.groupby(by, dropna=False)
    table = grouped[figures].mean()
    spread = grouped[figures].std(ddof=1)
    table = table.join(spread.add_suffix(" sd")).join(grouped["seed"].nunique().rename("seeds")).reset_index()
    lo, hi = grouped[figures].min().reset_index(drop=True), grouped[figures].max().reset_index(drop=True)
    pairs = list(itertools.combinations(range(len(table)), 2))
    apart = {}
    for f in figures:
        sep = [(i, j) for i, j in pairs if lo[f][i] > hi[f][j] or lo[f][j] > hi[f][i]]
        same = [(i, j) for i, j in pairs if table["corpus"][i] == table["corpus"][j]]
        apart[f] = {"pairs_apart": len(sep), "pairs": len(pairs),
                    "same_corpus_pairs_apart": len(set(same) & set(sep)), "same_corpus_pairs": len(same),
                    "configuration_range": float(table[f].max() - table[f].min()),
                    "largest_seed_range": float((hi[f] - lo[f]).max()),
                    "apart": [[_name(table, i), _name(table, j)] for i, j in sep]}
    return table, apart


def _name(table: pd.DataFrame, i: int) -> str:
    return " ".join(f"{c}={table[c][i]}" for c in CONFIG)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="the runs root (SPLADE_EXP_ROOT) whose artifacts/emlm to read")
    ap.add_argument("--json", type=Path, help="write the table and the comparison here")
    args = ap.parse_args(argv)
    start = loadavg()
    rows = artifact_rows(args.root)
    if rows.empty:
        print(f"no EMLM artifact with key.json and stats.json under {args.root}/artifacts/emlm", file=sys.stderr)
        return 1
    table, apart = summary(rows)
    show = table.drop(columns=["vocab", "init"])
    print(to_markdown(show.round(4)))
    for f, a in apart.items():
        print(f"{f}: {a['pairs_apart']} of {a['pairs']} pairs of configurations apart (every seed of one "
              f"beyond every seed of the other), {a['same_corpus_pairs_apart']} of {a['same_corpus_pairs']} on the "
              f"same corpus; means span {a['configuration_range']:.4g}, the largest "
              f"seed-to-seed range is {a['largest_seed_range']:.4g}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = {"machine": machine(start), "root": str(args.root), "artifacts": rows.to_dict("records"),
               "configurations": show.to_dict("records"), "apart": apart}
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=2, default=str) + "\n")
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
