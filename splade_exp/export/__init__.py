"""Trained models leave the framework: the model directory of a run, loaders, the export command.

- :mod:`.model_dir`: ``runs/<run_id>/model/`` (masked LM, tokenizer, output head, metadata),
  written at the end of every completed training run;
- :mod:`.st_files`: the files sentence-transformers' ``SparseEncoder`` reads from it;
- :mod:`.encoder`: :func:`load_encoder`, the project's own loader (``encode -> (CSR, terms)``);
- :mod:`.card` and ``python -m splade_exp.export``: a model card and an upload to the Hub.
"""
from splade_exp.export.encoder import LoadedEncoder, load_encoder
from splade_exp.export.model_dir import ModelDir, ModelDirError

__all__ = ["LoadedEncoder", "ModelDir", "ModelDirError", "load_encoder"]
