"""(Expanded) masked-LM pretraining of the head: softmax cross-entropy over the output vocabulary,
computed only at labelled (masked) positions, so the B x L x |V| logits are never formed.

The module records its own learning curves in ``self.curves`` (rows ``step, split, loss,
accuracy``): the training loss/accuracy averaged over each ``log_every_n_steps`` window, and the
validation loss/accuracy on a fixed list of pre-masked held-out batches (``val_batches``) at step 0,
every ``val_every_n_steps`` and at the last step. Validation figures are pooled over all labelled
positions of the held-out set (not a mean of batch means).
"""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from splade_exp.data.masking import IGNORE
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.stages.optim import adamw_linear


def masked_lm_sums(encoder: SpladeEncoder, batch: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(summed cross-entropy, number of correct top-1 predictions, number of labelled positions)."""
    h = encoder.features(batch["input_ids"], batch["attention_mask"])
    sel = batch["labels"] != IGNORE
    n = int(sel.sum())
    if n == 0:
        zero = h.sum() * 0.0
        return zero, zero.detach(), 0
    logits = encoder.decoder(h[sel])  # (N_labelled, |V|)
    target = batch["labels"][sel]
    loss = F.cross_entropy(logits.float(), target, reduction="sum")
    correct = (logits.argmax(-1) == target).sum().float()
    return loss, correct, n


def masked_lm_loss(encoder: SpladeEncoder, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, top-1 accuracy) over the labelled positions of ``batch``."""
    loss, correct, n = masked_lm_sums(encoder, batch)
    if n == 0:
        return loss, correct
    return loss / n, correct / n


def context_free_bound(batches: list[dict]) -> dict[str, float]:
    """What no predictor that ignores context can beat on these labelled positions: the best
    constant prediction's accuracy, ``max_w n_w / N``, and the entropy of the label distribution,
    ``-Σ_w (n_w / N) ln(n_w / N)`` (the cross-entropy of the best unigram table, fitted on these very
    labels, so an optimistic prior). A validation accuracy above the first, or a loss below the
    second, is learnt from context. ``n_w``: positions labelled ``w``; ``N``: labelled positions."""
    labels = [b["labels"][b["labels"] != IGNORE] for b in batches]
    labels = torch.cat(labels) if labels else torch.empty(0, dtype=torch.long)
    if labels.numel() == 0:
        return {"prior_accuracy": float("nan"), "prior_loss": float("nan")}
    counts = torch.bincount(labels).double()
    p = counts[counts > 0] / labels.numel()
    return {"prior_accuracy": float(p.max()), "prior_loss": float(-(p * p.log()).sum())}


class EmlmModule(L.LightningModule):
    """Args: ``lr``/``weight_decay``/``warmup_steps``/``max_steps`` of AdamW with linear decay;
    ``val_batches`` pre-masked held-out batches evaluated every ``val_every_n_steps`` optimizer
    steps (0 = only at the start and the end); ``log_every_n_steps`` the training-curve window.

    **Global batch.** Under data parallelism (W ranks, each with a slice of the global batch) the
    loss is the mean over the labelled positions of the *global* batch, not a mean of per-rank
    means (ranks hold different numbers of masked words). With ``S_r`` the summed cross-entropy of
    rank r and ``N = Σ_r N_r`` the global count (one all-reduce of ``(S_r, correct_r, N_r)`` per
    step), rank r back-propagates ``S_r / N · W``; DDP averages gradients over the W ranks, giving
    ``Σ_r ∇S_r / N``, the gradient of the global mean -- what one process computes on the whole
    batch. The logged loss and accuracy, the curves and the validation figures are global sums
    divided by global counts too (validation batches are split over the ranks).

    **Resume.** The curves, the open training window and the resumed-from step travel in the
    checkpoint (:meth:`on_save_checkpoint`). The rows of step t are recorded before a checkpoint of
    step t is written, whichever of the checkpoint callback and this module runs first, so a run
    resumed from step t has the curves an uninterrupted run has.
    """

    def __init__(self, encoder: SpladeEncoder, lr: float, weight_decay: float = 0.01,
                 warmup_steps: int = 0, max_steps: int = 1000, val_batches: list[dict] | None = None,
                 val_every_n_steps: int = 0, log_every_n_steps: int = 10) -> None:
        super().__init__()
        self.encoder = encoder
        self.val_batches = val_batches or []
        self.curves: list[dict] = []
        self._window = [0.0, 0.0, 0]  # summed loss, correct, labelled positions since the last row
        self._recorded = 0  # the last step whose curve rows were recorded
        self._unlogged: dict | None = None  # a validation row not yet sent to the logger
        self.resumed_from_step: int | None = None  # the checkpoint's global step when resumed
        self.save_hyperparameters(ignore=["encoder", "val_batches"], logger=False)

    @property
    def _world(self) -> tuple[int, int]:
        """(global rank, world size); (0, 1) outside a trainer."""
        trainer = self._trainer
        return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)

    def _sum_over_ranks(self, *values: float) -> list[float]:
        rank, world = self._world
        if world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        return self.trainer.strategy.reduce(t, reduce_op="sum").tolist()

    def on_train_start(self) -> None:
        self.encoder.train()  # from_pretrained leaves models in eval mode (dropout off)
        if self.val_batches and self.global_step == 0:
            self._validate(0)

    def training_step(self, batch, batch_idx):
        loss_sum, correct, n = masked_lm_sums(self.encoder, batch)
        s, c, total = self._sum_over_ranks(float(loss_sum.detach()), float(correct), float(n))
        world = self._world[1]
        loss = loss_sum / max(total, 1) * world  # see the class doc; world = 1: loss_sum / n
        self._window[0] += s
        self._window[1] += c
        self._window[2] += int(total)
        self.log("train/loss", s / max(total, 1), prog_bar=True)
        self.log("train/accuracy", c / max(total, 1), prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self._record(self.global_step)
        if self._unlogged is not None:  # recorded here or by a checkpoint save (where logging is not allowed)
            row, self._unlogged = self._unlogged, None
            self.log("val/loss", row["loss"])
            self.log("val/accuracy", row["accuracy"])

    def _record(self, step: int) -> None:
        """Curve rows of optimizer step ``step`` (once; a no-op between two optimizer steps)."""
        if step == self._recorded:
            return
        hp = self.hparams
        last = step >= hp.max_steps
        if self._window[2] and (step % max(hp.log_every_n_steps, 1) == 0 or last):
            s, c, n = self._window
            self.curves.append({"step": step, "split": "train", "loss": s / n, "accuracy": c / n})
            self._window = [0.0, 0.0, 0]
        if self.val_batches and (last or (hp.val_every_n_steps and step % hp.val_every_n_steps == 0)):
            self._validate(step)
        self._recorded = step

    @torch.no_grad()
    def _validate(self, step: int) -> dict:
        was_training = self.encoder.training
        self.encoder.eval()
        rank, world = self._world
        total, correct, n = 0.0, 0.0, 0
        for batch in self.val_batches[rank::world]:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            s, c, k = masked_lm_sums(self.encoder, batch)
            total, correct, n = total + float(s), correct + float(c), n + k
        total, correct, n = self._sum_over_ranks(total, correct, float(n))
        self.encoder.train(was_training)
        row = {"step": step, "split": "val", "loss": total / max(n, 1), "accuracy": correct / max(n, 1)}
        self.curves.append(row)
        if step > 0 and self._trainer is not None:
            self._unlogged = row
        return row

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self._record(self.global_step)
        checkpoint["emlm"] = {"curves": list(self.curves), "window": list(self._window), "recorded": self._recorded}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.resumed_from_step = int(checkpoint["global_step"])
        state = checkpoint.get("emlm", {})
        self.curves = list(state.get("curves", []))
        self._window = list(state.get("window", [0.0, 0.0, 0]))
        self._recorded = int(state.get("recorded", self.resumed_from_step))

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_linear(self.encoder, hp.lr, hp.weight_decay, hp.warmup_steps, hp.max_steps)
