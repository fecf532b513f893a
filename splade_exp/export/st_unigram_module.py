"""A sentence-transformers module for a splade-exp model with a unigram output head.

This file is copied into such a model directory as ``splade_exp_unigram.py``; it needs only
torch, safetensors and sentence-transformers (>= 5). Load the directory with

    from sentence_transformers import SparseEncoder
    model = SparseEncoder("path/to/model", trust_remote_code=True)

The directory's masked LM has a WordPiece output layer tied to its input embeddings (a standard
checkpoint); the head SPLADE trained scores |U| words and is stored in ``unigram_head/``
(``model.safetensors``: ``weight`` |U| x H and ``bias``; ``vocab.tsv``: the words in id order).
This module loads the masked LM as ``MLMTransformer`` does and puts that head in place of its
output layer, so the ``logits`` are the |U| word scores that ``SpladePooling`` pools.
``SparseEncoder.decode`` names dimensions with the tokenizer's ``convert_ids_to_tokens``: on this
module's tokenizer that maps head ids to the words (tokenising text does not use it).
"""
from __future__ import annotations

import torch
from safetensors.torch import load_file

try:
    from sentence_transformers.sparse_encoder.modules import MLMTransformer
except ImportError:  # sentence-transformers 5.x
    from sentence_transformers.sparse_encoder.models import MLMTransformer

HEAD_WEIGHTS = "unigram_head/model.safetensors"
HEAD_VOCAB = "unigram_head/vocab.tsv"


class UnigramMLMTransformer(MLMTransformer):
    """``MLMTransformer`` whose output layer is the trained unigram head of ``unigram_head/``."""

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token=None, cache_folder=None, revision=None,
             local_files_only: bool = False, **kwargs):
        where = dict(subfolder=subfolder, token=token, cache_folder=cache_folder, revision=revision,
                     local_files_only=local_files_only)
        module = super().load(model_name_or_path, **where, **kwargs)
        state = load_file(cls.load_file_path(model_name_or_path, HEAD_WEIGHTS, **where))
        with open(cls.load_file_path(model_name_or_path, HEAD_VOCAB, **where), encoding="utf-8") as fh:
            words = [line.rstrip("\n").split("\t")[0] for line in fh if line.strip()]
        module.set_unigram_head(state["weight"], state.get("bias"), words)
        return module

    def set_unigram_head(self, weight: torch.Tensor, bias: torch.Tensor | None, words: list[str]) -> None:
        if weight.shape[0] != len(words):
            raise ValueError(f"{HEAD_WEIGHTS} has {weight.shape[0]} rows but {HEAD_VOCAB} {len(words)} words")
        model = self.auto_model
        old = model.get_output_embeddings()
        head = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            head.weight.copy_(weight)
            if bias is not None:
                head.bias.copy_(bias)
        head.to(device=old.weight.device, dtype=old.weight.dtype)
        model.config.tie_word_embeddings = False  # a later tie_weights() must not put the WordPiece rows back
        model.set_output_embeddings(head)
        self.unigram_words = list(words)
        tokenizer = self.tokenizer

        def convert_ids_to_tokens(ids, skip_special_tokens: bool = False):
            if isinstance(ids, int):
                return self.unigram_words[ids]
            return [self.unigram_words[i] for i in ids]

        tokenizer.convert_ids_to_tokens = convert_ids_to_tokens

    def get_sentence_embedding_dimension(self) -> int:
        return len(self.unigram_words)

    get_embedding_dimension = get_sentence_embedding_dimension

    def save(self, *args, **kwargs):
        raise NotImplementedError("a splade-exp unigram model is re-exported with `python -m splade_exp.export`, "
                                  "not saved by sentence-transformers (its head lives outside the masked LM)")
