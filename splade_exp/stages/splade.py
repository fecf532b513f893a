"""SPLADE fine-tuning: a ranking loss + sparsity regularisers, all configured objects.

The objective comes from the ``loss`` config group (``conf/loss/*.yaml``): ``loss.ranking`` (a
ranking loss of :mod:`splade_exp.losses`: in-batch cross-entropy, MarginMSE, KL distillation, a
weighted sum) and ``loss.regularizers`` (named regularisers of :mod:`splade_exp.regularizers`, each
with its λ schedule), built by :func:`build_objective`. :class:`SpladeModule` encodes the batch,
gathers it, hands every loss the same :class:`~splade_exp.losses.LossBatch` and sums what they
return; it never looks at which losses they are, so a new loss needs no change here.

The regularisers and the in-batch negatives see the *global* batch: under data parallelism the
pooled vectors are all-gathered with gradients, so λ does not depend on the per-device batch size
and a run on W devices computes what one process computes on the concatenated batch.

Why the gradients come out right (W ranks, rank r holds queries q_r and documents d_r):

- Single process, global batch: ``L = mean_i CE_i + R(Q, D)`` over all W·B queries.
- Rank r computes ``L_r = mean_{i in r} CE_i(q_i, D_all) + R(Q_all, D_all)``; queries stay local,
  documents (and both sides of the regulariser) are gathered with ``all_gather(sync_grads=True)``.
- The gather's backward sums, over ranks, the gradients of every rank's loss with respect to the
  local rows; DDP then averages parameter gradients over the W ranks. The ranking term therefore
  becomes ``(1/W) Σ_r mean_{i in r} CE_i = mean_i CE_i``, and the regulariser, computed identically
  on every rank, is counted W times by the gather's sum and divided by W by DDP's average: once.
  No extra loss scaling is needed. The *logged* loss is averaged over ranks (``sync_dist``) so it is
  the global-batch value too.
- The same holds for any ranking loss that is a mean over this rank's queries, e.g. the
  distillation losses, which score each local query against its own local candidates and teacher
  scores only: ``(1/W) Σ_r mean_{i in r} ℓ_i = mean_i ℓ_i``. A regulariser must be computed on the
  gathered vectors (``batch.q_all``, ``batch.d_all``, ``batch.positives_all()``), identically on
  every rank.

Requirements: every rank has the same number of queries and documents per step (the training
loader drops the last partial batch; the distributed sampler pads the epoch), and documents are
laid out [positives | negatives] per rank, so query i of rank r has its positive at row
``r·N_d + i`` of the gathered documents. Duplicate documents anywhere in the global batch are
recognised by ``doc_keys`` and never used as a negative for a query whose positive they copy.
"""
from __future__ import annotations

from typing import Mapping

import lightning as L
import torch
from torch import nn

from splade_exp import regularizers as R
from splade_exp.losses import InBatchCrossEntropy, LossBatch, as_terms
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.stages.optim import adamw_linear


def build_objective(loss) -> tuple[nn.Module, dict[str, nn.Module]]:
    """(ranking loss, {name: regulariser}) from the ``loss`` config group (``_target_`` nodes)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    def build(node, key: str):
        try:
            return instantiate(node, _convert_="all")
        except InstantiationException as err:  # show the class's own message, naming the key
            cause = err.__cause__
            if isinstance(cause, (ValueError, TypeError)):
                raise type(cause)(f"{key}: {cause}") from None
            raise

    regs = loss.get("regularizers") or {}  # a null entry is switched off (loss.regularizers.flops=null)
    return build(loss.ranking, "loss.ranking"), {k: build(v, f"loss.regularizers.{k}") for k, v in regs.items()
                                                 if v is not None}


def _add_terms(out: dict, terms: dict, owner: str) -> None:
    clash = sorted(set(terms) & (set(out) | {"loss"}))
    if clash:
        raise ValueError(f"{owner} logs {clash}, a name another term of the objective already uses; rename it")
    out.update(terms)


class SpladeModule(L.LightningModule):
    """Args:
        encoder: the SPLADE encoder being fine-tuned.
        ranking_loss: a ranking loss (:mod:`splade_exp.losses`); in-batch cross-entropy by default.
        regularizers: named regularisers (:mod:`splade_exp.regularizers`), summed in this order.
        topk_q, topk_d: training-time top-k masking of the pooled vectors (0 = none).
        lr, weight_decay, warmup_steps, max_steps: AdamW with linear warm-up and decay.
    """

    def __init__(
        self,
        encoder: SpladeEncoder,
        ranking_loss: nn.Module | None = None,
        regularizers: Mapping[str, nn.Module] | None = None,
        topk_q: int = 0,
        topk_d: int = 0,
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        max_steps: int = 1000,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.ranking_loss = ranking_loss if ranking_loss is not None else InBatchCrossEntropy()
        self.regularizers = nn.ModuleDict(dict(regularizers or {}))
        # not sent to the logger: run() logs the whole resolved config once
        self.save_hyperparameters(ignore=["encoder", "ranking_loss", "regularizers"], logger=False)
        self.diagnostics: dict = {}  # head diagnostics at initialisation (kept in checkpoints)
        self.resumed_from_step: int | None = None  # the checkpoint's global step when resumed

    @property
    def _world(self) -> tuple[int, int]:
        """(global rank, world size); (0, 1) outside a trainer."""
        trainer = self._trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _gather(self, x: torch.Tensor, grads: bool = True) -> torch.Tensor:
        """Rows of every rank, rank-major: (W·n, ...). With ``grads`` the backward pass reaches every rank."""
        if self._world[1] == 1:
            return x
        return self.all_gather(x, sync_grads=grads).flatten(0, 1)

    def compute_loss(self, batch) -> tuple[dict[str, torch.Tensor | float], set[str]]:
        """(``{"loss", "rank_loss", "reg", diagnostics, the losses' own terms}``, the names of the
        per-rank terms among them: the loss and the ranking loss's terms, means over local queries)."""
        hp = self.hparams
        q = self.encoder(batch["q_input_ids"], batch["q_attention_mask"], topk=hp.topk_q)
        d = self.encoder(batch["d_input_ids"], batch["d_attention_mask"], topk=hp.topk_d)
        q_all, d_all = self._gather(q), self._gather(d)
        rank, _ = self._world
        # positives of rank r sit at rows [r*Nd, r*Nd + n_pos) of the gathered documents
        lb = LossBatch(q=q, d=d, q_all=q_all, d_all=d_all, pos_index=batch["pos_index"] + rank * d.shape[0],
                       doc_keys=self._gather(batch["doc_keys"], grads=False), step=self.global_step,
                       teacher_scores=batch.get("teacher_scores"), gather=self._gather)
        ranking = as_terms(self.ranking_loss(lb), self.ranking_loss)
        out = {"rank_loss": ranking.pop("loss")}
        with torch.no_grad():
            out.update({"flops_q": R.flops(q_all), "flops_d": R.flops(d_all), "l0_q": R.l0(q_all), "l0_d": R.l0(d_all),
                        # collapse diagnostics: 1 when every text of the batch gets the same vector
                        "cos_q": R.mean_pairwise_cosine(q_all), "cos_d": R.mean_pairwise_cosine(d_all)})
        out["reg"] = reg = None
        _add_terms(out, ranking, "loss.ranking")
        for name, regularizer in self.regularizers.items():
            terms = as_terms(regularizer(lb), regularizer)
            value = terms.pop("loss")
            reg = value if reg is None else reg + value
            _add_terms(out, terms, f"loss.regularizers.{name}")
        out["reg"] = torch.zeros((), device=q.device) if reg is None else reg
        out["loss"] = out["rank_loss"] if reg is None else out["rank_loss"] + reg
        return out, {"loss", "rank_loss", *ranking}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["head_diagnostics"] = dict(self.diagnostics)
        checkpoint["resumed_from_step"] = self.resumed_from_step  # of the process that saved it

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.resumed_from_step = int(checkpoint["global_step"])
        self.diagnostics = dict(checkpoint.get("head_diagnostics", {}))

    def on_train_start(self) -> None:
        self.encoder.train()  # from_pretrained leaves models in eval mode (dropout off)

    def training_step(self, batch, batch_idx):
        out, synced = self.compute_loss(batch)
        n = batch["q_input_ids"].shape[0]
        # loss and the ranking terms are per-rank means over local queries: average them over ranks
        # to log the global-batch value; the other terms are already computed on the global batch.
        for key, value in out.items():
            self.log(f"train/{key}", value, prog_bar=key in ("loss", "l0_q", "l0_d"), batch_size=n,
                     sync_dist=key in synced)
        return out["loss"]

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_linear(self.encoder, hp.lr, hp.weight_decay, hp.warmup_steps, hp.max_steps)
