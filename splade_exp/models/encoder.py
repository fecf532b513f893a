"""The SPLADE encoder: a masked-LM trunk (everything up to the head's transform) and a separate,
untied vocabulary projection, pooled into one sparse vector per text.

Any ``AutoModelForMaskedLM`` is split generically: its output embedding (the decoder ``Linear``)
is copied out and replaced in place by ``nn.Identity``, so the model's ``logits`` become the
transformed hidden states (B, L, H). The vocabulary projection then lives in ``self.decoder`` and
can be swapped (unigram vocabulary), re-initialised or rescaled without touching the input
embeddings.
"""
from __future__ import annotations

import torch
from torch import nn

from splade_exp.models.pooling import DEFAULT_CHUNK_SIZE, POOLING_IMPLS, POOLINGS, sparse_pool
from splade_exp.sparse import topk_mask


def check_head(head) -> None:
    """The ``head`` group's values (``conf/head/default.yaml``), checked before any job runs: the
    pooling and its implementation and chunk size (this module's encoder), ``k`` and ``inflate_norm``
    (:mod:`splade_exp.models.head_scale`). Raises :class:`splade_exp.checks.ConfigError`."""
    from splade_exp.checks import ConfigError, positive_int, positive_number

    if head.get("pooling") not in POOLINGS:
        raise ConfigError(f"head.pooling must be one of {POOLINGS}, got {head.get('pooling')!r}")
    if head.get("pooling_impl") not in POOLING_IMPLS:
        raise ConfigError(f"head.pooling_impl must be one of {POOLING_IMPLS}, got {head.get('pooling_impl')!r}")
    positive_int(head.get("chunk_size"), "head.chunk_size", " (vocabulary rows per chunk)")
    positive_number(head.get("k"), "head.k")
    if not isinstance(head.get("scale_bias", False), bool):
        raise ConfigError(f"head.scale_bias must be true or false, got {head.get('scale_bias')!r}")
    if head.get("inflate_norm") is not None:
        positive_number(head.inflate_norm, "head.inflate_norm")


def _module_path(root: nn.Module, target: nn.Module) -> str:
    for name, module in root.named_modules():
        if module is target:
            return name
    raise ValueError("the output embedding is not a submodule of the model")


class SpladeEncoder(nn.Module):
    """Encodes token ids into pooled term weights ``w`` of shape (B, |V_out|).

    Args:
        mlm: a masked-LM model whose decoder has been replaced by ``nn.Identity``.
        decoder: the vocabulary projection (``weight`` |V_out| x H, optional ``bias``).
        decoder_path: dotted path of the decoder inside ``mlm`` (used to export).
        pooling: ``max`` (SPLADE v2) or ``sum``.
        pooling_impl: ``naive`` or ``chunked`` (never stores B x L x |V| logits).
        chunk_size: vocabulary rows per chunk for the chunked implementation.
    """

    def __init__(
        self,
        mlm: nn.Module,
        decoder: nn.Linear,
        decoder_path: str,
        pooling: str = "max",
        pooling_impl: str = "chunked",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__()
        self.mlm = mlm
        self.decoder = decoder
        self.decoder_path = decoder_path
        self.pooling = pooling
        self.pooling_impl = pooling_impl
        self.chunk_size = chunk_size

    @classmethod
    def from_masked_lm(cls, mlm: nn.Module, **kwargs) -> "SpladeEncoder":
        """Split ``mlm`` into trunk + an untied copy of its decoder."""
        old = mlm.get_output_embeddings()
        if not isinstance(old, nn.Linear):
            raise TypeError(f"{type(mlm).__name__} has no Linear output embedding to split off")
        path = _module_path(mlm, old)
        decoder = nn.Linear(old.in_features, old.out_features, bias=old.bias is not None)
        with torch.no_grad():
            decoder.weight.copy_(old.weight)
            if old.bias is not None:
                decoder.bias.copy_(old.bias)
        mlm.set_submodule(path, nn.Identity())
        if hasattr(mlm, "config"):
            mlm.config.tie_word_embeddings = False
        encoder = cls(mlm, decoder, path, **kwargs)
        encoder.freeze_detached_head()
        return encoder

    def freeze_detached_head(self) -> list[str]:
        """Make the output-head parameters that no longer reach the output untrainable; their names.

        With the decoder split off, some head parameters may take no part in the forward pass: BERT's
        ``cls.predictions.bias`` is a second copy of the old decoder's bias (the same tensor in a
        freshly built model, a separate one once a checkpoint is loaded untied), and other heads
        may keep similar leftovers. Such a parameter never gets a gradient, which DDP without
        ``find_unused_parameters`` refuses. Which ones they are is found by one backward pass of a
        two-token input through :meth:`features` (eval mode: no dropout, no random numbers drawn),
        over the parameters outside the base model (``mlm.base_model``), so that a trunk path a
        probe does not exercise is never frozen. Their values stay in the state dict.
        """
        mlm = self.mlm
        base = getattr(mlm, "base_model", mlm)
        trunk = {id(p) for p in base.parameters()} if base is not mlm else set()
        head = [(n, p) for n, p in mlm.named_parameters() if p.requires_grad and id(p) not in trunk]
        if not head:
            return []
        modes = {m: m.training for m in mlm.modules()}
        device = next(mlm.parameters()).device
        ids = torch.zeros(1, 2, dtype=torch.long, device=device)
        try:
            mlm.eval()
            with torch.enable_grad():
                out = self.features(ids, torch.ones_like(ids))
            grads = (torch.autograd.grad(out.float().sum(), [p for _, p in head], allow_unused=True)
                     if out.requires_grad else [None] * len(head))
        finally:
            for m, training in modes.items():
                m.training = training
        unused = [(n, p) for (n, p), g in zip(head, grads) if g is None]
        for _, p in unused:
            p.requires_grad_(False)
        return [n for n, _ in unused]

    @property
    def vocab_size(self) -> int:
        return self.decoder.out_features

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Transformed hidden states (B, L, H): the head's input to the vocabulary projection."""
        return self.mlm(input_ids=input_ids, attention_mask=attention_mask).logits

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token-level logits (B, L, |V_out|). Materialises them: for diagnostics only."""
        return self.decoder(self.features(input_ids, attention_mask))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, topk: int = 0
    ) -> torch.Tensor:
        h = self.features(input_ids, attention_mask)
        w = sparse_pool(
            h,
            self.decoder.weight,
            self.decoder.bias,
            attention_mask,
            pooling=self.pooling,
            impl=self.pooling_impl,
            chunk_size=self.chunk_size,
        )
        return topk_mask(w, topk)

    def export_masked_lm(self) -> nn.Module:
        """Put the (possibly retrained) decoder back into the masked-LM model and return it.

        Only meaningful when the output vocabulary is the input vocabulary (WordPiece head).
        The decoder stays untied from the input embeddings.
        """
        try:
            self.mlm.set_output_embeddings(self.decoder)  # also re-points BERT's extra bias
        except (AttributeError, NotImplementedError):
            self.mlm.set_submodule(self.decoder_path, self.decoder)
        return self.mlm

    def detach_decoder(self) -> None:
        """Undo :meth:`export_masked_lm` (the trunk again ends at the head's transform)."""
        self.mlm.set_submodule(self.decoder_path, nn.Identity())

