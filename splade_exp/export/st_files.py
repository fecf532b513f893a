"""The files sentence-transformers' ``SparseEncoder`` reads from a model directory.

``SparseEncoder(dir)`` builds module 0 from the directory's root (a masked LM whose ``logits``
are the token-level term scores) and module 1 from ``1_SpladePooling/`` (``log1p(relu(.))``
pooled over the tokens), which is exactly the project's encoder:

- max pooling: sentence-transformers multiplies the logits by the attention mask and takes the
  max after ``relu``; the project sets padding to ``-inf`` before the max. Both give
  ``max(0, max over real tokens of relu(z))``, since ``relu >= 0`` and a padding position scores
  ``relu(0) = 0``;
- sum pooling: padding contributes ``log1p(relu(0)) = 0`` in both;
- truncation: one ``max_seq_length`` for every text. It is the run's document length
  (``data.doc_max_length``); the project truncates queries to ``data.query_max_length``, so a
  query longer than that gets more terms from sentence-transformers than from the project.

The names are those of sentence-transformers 5 (``sparse_encoder.models.MLMTransformer``,
``word_embedding_dimension``): 6.x reads them through its aliases (without warnings), while 5.x
would not read 6.x's ``transformer_task`` keys.

A unigram head is module 0 too, a subclass of ``MLMTransformer`` whose output layer is the
trained head (:mod:`splade_exp.export.st_unigram_module`, copied into the directory as
``splade_exp_unigram.py``); sentence-transformers imports it only with ``trust_remote_code=True``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

UNIGRAM_MODULE = "splade_exp_unigram"
MLM_MODULE = "sentence_transformers.sparse_encoder.models.MLMTransformer"
POOLING_MODULE = "sentence_transformers.sparse_encoder.models.SpladePooling"
POOLING_DIR = "1_SpladePooling"


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def _versions() -> dict:
    """The versions sentence-transformers records; its own from the installed metadata (importing
    it would cost seconds at the end of every run), absent when it is not installed."""
    import importlib.metadata as md

    import torch
    import transformers

    versions = {"transformers": transformers.__version__, "pytorch": torch.__version__}
    try:
        versions["sentence_transformers"] = md.version("sentence-transformers")
    except md.PackageNotFoundError:
        pass
    return versions


def write_sparse_encoder_files(out: Path, pooling: str, vocab_size: int, max_seq_length: int, unigram: bool) -> None:
    """Write the SparseEncoder module files into the model directory ``out`` (written by
    ``save_pretrained`` already)."""
    out = Path(out)
    first = MLM_MODULE
    if unigram:
        shutil.copyfile(Path(__file__).with_name("st_unigram_module.py"), out / f"{UNIGRAM_MODULE}.py")
        first = f"{UNIGRAM_MODULE}.UnigramMLMTransformer"
    _dump(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": first},
        {"idx": 1, "name": "1", "path": POOLING_DIR, "type": POOLING_MODULE},
    ])
    _dump(out / "sentence_bert_config.json", {"max_seq_length": int(max_seq_length), "do_lower_case": False})
    _dump(out / POOLING_DIR / "config.json", {"pooling_strategy": pooling, "activation_function": "relu",
                                              "word_embedding_dimension": int(vocab_size)})
    _dump(out / "config_sentence_transformers.json", {
        "model_type": "SparseEncoder",
        "__version__": _versions(),
        "prompts": {"query": "", "document": ""},
        "default_prompt_name": None,
        "similarity_fn_name": "dot",
    })
