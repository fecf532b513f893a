"""``splade_exp.load_encoder(dir)``: a model directory as the project's own encoder.

It reads the directory exactly as the pipeline does with ``backbone=local
backbone.name_or_path=<dir>`` (:func:`splade_exp.models.backbone.load_masked_lm`, then the
directory's head, :meth:`ModelDir.attach_head`) and encodes with the evaluation's
:func:`splade_exp.stages.evaluate.encode`, so its vectors are the ones the run's metrics were
computed from, for WordPiece and unigram heads alike; the term strings name the output
dimensions (the head's words, or the tokenizer's pieces).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import scipy.sparse as sp
import torch

from splade_exp.export.model_dir import ModelDir
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.models.pooling import DEFAULT_CHUNK_SIZE


@dataclass
class LoadedEncoder:
    """A model directory loaded for encoding; see :func:`load_encoder`."""

    encoder: SpladeEncoder
    tokenizer: object
    terms: list[str]
    query_max_length: int
    doc_max_length: int
    device: str = "cpu"
    model_dir: ModelDir | None = None
    batch_size: int = 128

    def encode(self, texts: list[str], max_length: int | None = None,
               batch_size: int | None = None) -> tuple[sp.csr_matrix, list[str]]:
        """(CSR matrix of term weights, one row per text; the term string of every column).

        Texts are truncated to ``max_length`` tokens (default: the run's document length); use
        :meth:`encode_queries` for queries. Batches are formed as the evaluation forms them (texts
        sorted by length), of the run's ``trainer.eval_batch_size`` by default: the same batches,
        hence the same padding, give the evaluation's vectors bit for bit.
        """
        from splade_exp.stages.evaluate import encode

        length = self.doc_max_length if max_length is None else int(max_length)
        size = self.batch_size if batch_size is None else int(batch_size)
        return encode(self.encoder, self.tokenizer, list(texts), length, size, self.device), self.terms

    def encode_queries(self, texts: list[str], batch_size: int | None = None) -> tuple[sp.csr_matrix, list[str]]:
        """:meth:`encode` with the run's query length (``data.query_max_length``)."""
        return self.encode(texts, self.query_max_length, batch_size)

    def decode(self, row: sp.csr_matrix, top_k: int | None = None) -> list[tuple[str, float]]:
        """The (term, weight) pairs of one encoded row, largest weight first."""
        row = row.tocsr()
        order = sorted(zip(row.indices, row.data), key=lambda t: (-t[1], t[0]))
        return [(self.terms[i], float(w)) for i, w in order[:top_k]]


def load_encoder(path, device: str | torch.device = "cpu", pooling_impl: str | None = None,
                 chunk_size: int | None = None) -> LoadedEncoder:
    """Load a model directory (``runs/<run_id>/model/``, an export of it, or the Hub repository it
    was uploaded to: ``user/name``) for encoding.

    A masked-LM directory that splade-exp did not write (no ``splade_exp.json``) loads too, as a
    WordPiece SPLADE model with max pooling and 256-token texts. ``pooling_impl`` and
    ``chunk_size`` default to the run's ``head`` settings (the vocabulary chunking changes the
    order of float operations, hence the last bits of the weights).
    """
    from splade_exp.models.backbone import load_masked_lm, looks_local

    if not looks_local(str(path)):  # a Hub repository: its files, from the cache or downloaded once
        from huggingface_hub import snapshot_download

        path = snapshot_download(str(path))
    path = Path(path).expanduser()
    model_dir = ModelDir.of(path)
    mlm, tokenizer = load_masked_lm(str(path))
    pooling = model_dir.pooling if model_dir else "max"
    head = ((model_dir.meta.get("config") or {}).get("head") or {}) if model_dir else {}
    encoder = SpladeEncoder.from_masked_lm(mlm, pooling=pooling, pooling_impl=pooling_impl or head.get(
        "pooling_impl", "chunked"), chunk_size=int(chunk_size or head.get("chunk_size", DEFAULT_CHUNK_SIZE)))
    if model_dir is not None:
        encoder, _ = model_dir.attach_head(encoder)
        terms = model_dir.terms(tokenizer)
        lengths = model_dir.meta["max_length"]
    else:
        terms = tokenizer.convert_ids_to_tokens(list(range(encoder.vocab_size)))
        lengths = {"query": 256, "document": 256}
    encoder.to(device).eval()
    batch = ((model_dir.meta.get("config") or {}).get("trainer") or {}).get("eval_batch_size") if model_dir else None
    return LoadedEncoder(encoder, tokenizer, terms, int(lengths["query"]), int(lengths["document"]), str(device),
                         model_dir, int(batch or 128))
