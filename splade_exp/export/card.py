"""The model card (``README.md``) of an exported model: what was trained on what, its metrics over
the pruning grid (from the run's results file), how to load it, the command that reproduces it.

Everything comes from the model directory's ``splade_exp.json`` (the run's resolved config) and
the run's results rows; the card states only what those record.
"""
from __future__ import annotations

import json
import math
import shlex

import pandas as pd

from splade_exp.export.model_dir import HEAD_VOCAB, UNIGRAM_HEAD, ModelDir

METRICS = (("mrr@10", "MRR@10"), ("ndcg@10", "nDCG@10"), ("recall@10", "R@10"), ("recall@100", "R@100"),
           ("flops", "FLOPS"), ("l0_q", "L0 query"), ("l0_d", "L0 doc"))


EFFECTIVENESS = ("mrr@10", "ndcg@10", "recall@10", "recall@100")


def _num(col: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{float(v):.4f}" if col in EFFECTIVENESS else f"{float(v):.4g}"


def metrics_table(rows: pd.DataFrame, bm25: pd.DataFrame | None = None) -> list[str]:
    """Markdown lines: one row per pruning point (unpruned first), then BM25 when given."""
    cols = [(c, name) for c, name in METRICS if c in rows.columns]
    lines = ["| (qk, dk) | " + " | ".join(name for _, name in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    order = rows.assign(_p=~((rows["qk"] == 0) & (rows["dk"] == 0)), _f=-rows.get("flops", 0))
    for _, r in order.sort_values(["_p", "_f"], kind="mergesort").iterrows():
        lines.append(f"| ({int(r['qk'])}, {int(r['dk'])}) | " + " | ".join(_num(c, r[c]) for c, _ in cols) + " |")
    if bm25 is not None and not bm25.empty:
        r = bm25.iloc[0]
        lines.append("| BM25 | " + " | ".join(_num(c, r[c]) if c in r else "–" for c, _ in cols) + " |")
    return lines


def _front_matter(meta: dict) -> list[str]:
    backbone = meta.get("backbone") or {}
    lines = ["---", "library_name: sentence-transformers", "pipeline_tag: feature-extraction"]
    if backbone.get("license"):
        lines.append(f"license: {backbone['license']}")
    name = backbone.get("name_or_path")
    if name and "/" in str(name) and not str(name).startswith(("/", ".", "~")):
        lines.append(f"base_model: {name}")
    lines += ["tags:", "- sparse-encoder", "- sparse", "- splade", "- learned-sparse-retrieval", "- splade-exp", "---"]
    return lines


def _training_lines(meta: dict) -> list[str]:
    cfg = meta.get("config") or {}
    backbone, vocab, head = meta.get("backbone") or {}, meta["vocab"], meta.get("head") or {}
    t, loss, data = cfg.get("trainer", {}), cfg.get("loss", {}), cfg.get("data", {})
    where = f" (`{backbone['name_or_path']}`)" if backbone.get("name_or_path") else " (built from scratch on the data)"
    if vocab["kind"] == "unigram":
        out_vocab = (f"unigram: {vocab['size']:,} words (`{UNIGRAM_HEAD}/{HEAD_VOCAB}`, id order); "
                     "the input side keeps the backbone's WordPieces")
    else:
        out_vocab = f"WordPiece: the backbone's {vocab['size']:,} input pieces"
    pretrain = cfg.get("pretrain", {})
    rows = [
        ("backbone", f"{backbone.get('name', '?')}{where}"),
        ("output vocabulary", out_vocab),
        ("head initialisation", (cfg.get("init") or {}).get("name", "?")),
        ("EMLM pretraining of the head", pretrain.get("name", "none") if pretrain.get("enabled") else "none"),
        ("MLM-head scale k", f"{head.get('k', 1):g} ({'applied' if head.get('applied') else 'not applied'} "
                             "before fine-tuning)"),
        ("pooling", f"{meta['pooling']} over tokens of log(1 + relu(logits))"),
        ("loss / regulariser", f"{loss.get('name', '?')} (λ_q = {loss.get('lambda_q')}, λ_d = {loss.get('lambda_d')}, "
                               f"λ_joint = {loss.get('lambda_joint')})"),
        ("training data", f"{data.get('name', '?')}: "
                          f"`{json.dumps(data.get('source', {}), sort_keys=True)}`"),
        ("training", f"{meta.get('step', '?')} steps, batch {t.get('batch_size')}, lr {t.get('lr')}, "
                     f"seed {cfg.get('seed')}"),
        ("max length", f"queries {meta['max_length']['query']}, documents {meta['max_length']['document']} tokens"),
    ]
    return ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _usage_lines(meta: dict, repo: str) -> list[str]:
    unigram = meta["vocab"]["kind"] == "unigram"
    remote = ", trust_remote_code=True" if unigram else ""
    lines = ["```python", "from sentence_transformers import SparseEncoder", "",
             f'model = SparseEncoder("{repo}"{remote})',
             'embeddings = model.encode(["what is learned sparse retrieval?"])',
             "print(model.decode(embeddings[0], top_k=10))", "```", ""]
    if unigram:
        lines += ["The output head scores words, not the tokenizer's pieces: it is stored in "
                  f"`{UNIGRAM_HEAD}/` and put in place by the module `splade_exp_unigram.py`, which "
                  "sentence-transformers runs only with `trust_remote_code=True`. "
                  "`AutoModelForMaskedLM.from_pretrained` alone loads the fine-tuned encoder with an untrained "
                  "WordPiece output layer (tied to the input embeddings).", ""]
    q, d = meta["max_length"]["query"], meta["max_length"]["document"]
    lines += [f"sentence-transformers truncates every text to {d} tokens; the evaluation truncated queries "
              f"to {q}. The same vectors as the evaluation, with the term of every dimension:", "",
              "```python", "import splade_exp", "",
              f'encoder = splade_exp.load_encoder("{repo}")',
              'docs, terms = encoder.encode(["a document"])        # scipy CSR matrix, term strings',
              'queries, _ = encoder.encode_queries(["a query"])', "```"]
    return lines


def _reproduce_lines(meta: dict) -> list[str]:
    overrides = meta.get("overrides")
    version = (meta.get("versions") or {}).get("splade_exp", "?")
    if overrides is not None:
        cmd = " ".join(["python -m splade_exp", *(shlex.quote(o) for o in overrides)])
        return [f"With splade-exp {version} (the run's resolved config is `config` in "
                "`splade_exp.json`):", "", "```bash", cmd, "```"]
    return [f"No command line was recorded (the run was started from Python); its resolved config is `config` in "
            f"`splade_exp.json` (splade-exp {version})."]


def _license_line(meta: dict) -> str:
    backbone = meta.get("backbone") or {}
    if backbone.get("license"):
        return f"The backbone's license is `{backbone['license']}`; this model is derived from it."
    if not backbone.get("name_or_path"):
        return "The backbone was built from scratch by splade-exp on the training data (no upstream weights)."
    return "The backbone's license is not known here: check its own model card before you publish this model."


def model_card(model_dir: ModelDir, rows: pd.DataFrame, bm25: pd.DataFrame | None = None,
               repo: str | None = None) -> str:
    """The README.md text of ``model_dir``; ``rows`` are the run's results rows."""
    meta = model_dir.meta
    title = meta.get("model") or f"splade-exp run {meta['run_id']}"
    data = meta.get("data") or {}
    lines = [
        *_front_matter(meta), "",
        f"# {title}", "",
        f"A SPLADE sparse encoder fine-tuned with splade-exp (run `{meta['run_id']}`, sweep `{meta.get('sweep')}`).",
        "Each text becomes a vector over the output vocabulary: max (or sum) over its tokens of "
        "log(1 + relu(MLM logits)).", "",
        "## Training", "", *_training_lines(meta), "",
        f"## Evaluation: {data.get('name', '?')}, split `{data.get('eval_split', '?')}`", "",
        "Static pruning grid: `qk` / `dk` = query / document terms kept (top-k by weight; 0 = not pruned). "
        "FLOPS is the expected number of multiplications per query-document score, on what is indexed.", "",
        *metrics_table(rows, bm25), "",
        "## Usage", "", *_usage_lines(meta, repo or str(model_dir.path)), "",
        "## Reproduce", "", *_reproduce_lines(meta), "",
        "## License", "",
        _license_line(meta),
        "",
    ]
    return "\n".join(lines)
