"""SPLADE fine-tuning: in-batch negatives cross-entropy + a sparsity regulariser.

The regulariser and the in-batch negatives see the *global* batch: under data parallelism the
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

Requirements: every rank has the same number of queries and documents per step (the training
loader drops the last partial batch; the distributed sampler pads the epoch), and documents are
laid out [positives | negatives] per rank, so query i of rank r has its positive at row
``r·N_d + i`` of the gathered documents. Duplicate documents anywhere in the global batch are
recognised by ``doc_keys`` and never used as a negative for a query whose positive they copy.
"""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from splade_exp import regularizers as R
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.stages.optim import adamw_linear


def ranking_loss(q: torch.Tensor, d: torch.Tensor, pos_index: torch.Tensor, doc_keys: torch.Tensor) -> torch.Tensor:
    """In-batch cross-entropy; copies of a query's positive elsewhere in the batch are masked out."""
    scores = q @ d.T
    pos_keys = doc_keys[pos_index]
    dup = doc_keys.unsqueeze(0) == pos_keys.unsqueeze(1)
    dup[torch.arange(len(pos_index), device=dup.device), pos_index] = False
    return F.cross_entropy(scores.masked_fill(dup, float("-inf")), pos_index)


class SpladeModule(L.LightningModule):
    """Args mirror the ``loss`` and ``trainer`` config groups.

    regularizer: ``flops`` (λ_q·FLOPS(Q) + λ_d·FLOPS(D)) or ``joint_flops`` (λ·JFLOPS(Q, D)).
    joint_docs: ``all`` (positives + negatives, default) or ``positives`` for JFLOPS's D.
    lambda_warmup_steps: T of the quadratic λ ramp, counted in optimizer steps.
    """

    def __init__(
        self,
        encoder: SpladeEncoder,
        regularizer: str = "flops",
        lambda_q: float = 3e-4,
        lambda_d: float = 1e-4,
        lambda_joint: float = 1e-4,
        lambda_warmup_steps: int = 1000,
        joint_docs: str = "all",
        topk_q: int = 0,
        topk_d: int = 0,
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        max_steps: int = 1000,
    ) -> None:
        super().__init__()
        if regularizer not in ("flops", "joint_flops"):
            raise ValueError(f"loss.regularizer must be 'flops' or 'joint_flops', got {regularizer!r}")
        if joint_docs not in ("all", "positives"):
            raise ValueError(f"loss.joint_docs must be 'all' or 'positives', got {joint_docs!r}")
        self.encoder = encoder
        # not sent to the logger: run() logs the whole resolved config once
        self.save_hyperparameters(ignore=["encoder"], logger=False)
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

    def lambdas(self) -> tuple[float, float]:
        hp, t = self.hparams, self.global_step
        if hp.regularizer == "flops":
            return (R.lambda_at(t, hp.lambda_q, hp.lambda_warmup_steps), R.lambda_at(t, hp.lambda_d, hp.lambda_warmup_steps))
        lam = R.lambda_at(t, hp.lambda_joint, hp.lambda_warmup_steps)
        return lam, lam

    def compute_loss(self, batch) -> dict[str, torch.Tensor]:
        hp = self.hparams
        q = self.encoder(batch["q_input_ids"], batch["q_attention_mask"], topk=hp.topk_q)
        d = self.encoder(batch["d_input_ids"], batch["d_attention_mask"], topk=hp.topk_d)
        n_pos = q.shape[0]
        q_all, d_all = self._gather(q), self._gather(d)
        keys_all = self._gather(batch["doc_keys"], grads=False)
        rank, _ = self._world
        # positives of rank r sit at rows [r*Nd, r*Nd + n_pos) of the gathered documents
        pos_index = batch["pos_index"] + rank * d.shape[0]
        rank_loss = ranking_loss(q, d_all, pos_index, keys_all)
        flops_q, flops_d = R.flops(q_all), R.flops(d_all)
        lam_q, lam_d = self.lambdas()
        out = {"rank_loss": rank_loss, "flops_q": flops_q, "flops_d": flops_d,
               "l0_q": R.l0(q_all), "l0_d": R.l0(d_all), "lambda_q": torch.tensor(lam_q), "lambda_d": torch.tensor(lam_d),
               # collapse diagnostics: 1 when every text of the batch gets the same vector
               "cos_q": R.mean_pairwise_cosine(q_all), "cos_d": R.mean_pairwise_cosine(d_all)}
        if hp.regularizer == "flops":
            reg = lam_q * flops_q + lam_d * flops_d
        else:
            if hp.joint_docs == "positives":
                d_pos = d.narrow(0, 0, n_pos)
                d_reg = self._gather(d_pos)
            else:
                d_reg = d_all
            jf = R.joint_flops(q_all, d_reg)
            out["jflops"] = jf
            reg = lam_q * jf
        out["reg"] = reg
        out["loss"] = rank_loss + reg
        return out

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["head_diagnostics"] = dict(self.diagnostics)
        checkpoint["resumed_from_step"] = self.resumed_from_step  # of the process that saved it

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.resumed_from_step = int(checkpoint["global_step"])
        self.diagnostics = dict(checkpoint.get("head_diagnostics", {}))

    def on_train_start(self) -> None:
        self.encoder.train()  # from_pretrained leaves models in eval mode (dropout off)

    def training_step(self, batch, batch_idx):
        out = self.compute_loss(batch)
        n = batch["q_input_ids"].shape[0]
        # loss and rank_loss are per-rank means over local queries: average them over ranks to
        # log the global-batch value; the other terms are already computed on the global batch.
        for key in ("loss", "rank_loss", "flops_q", "flops_d", "l0_q", "l0_d", "cos_q", "cos_d"):
            self.log(f"train/{key}", out[key], prog_bar=key in ("loss", "l0_q", "l0_d"), batch_size=n,
                     sync_dist=key in ("loss", "rank_loss"))
        if "jflops" in out:
            self.log("train/jflops", out["jflops"], batch_size=n)
        self.log("train/lambda_q", out["lambda_q"], batch_size=n)
        self.log("train/lambda_d", out["lambda_d"], batch_size=n)
        return out["loss"]

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_linear(self.encoder, hp.lr, hp.weight_decay, hp.warmup_steps, hp.max_steps)
