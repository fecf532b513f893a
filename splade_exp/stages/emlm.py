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


class EmlmModule(L.LightningModule):
    """Args: ``lr``/``weight_decay``/``warmup_steps``/``max_steps`` of AdamW with linear decay;
    ``val_batches`` pre-masked held-out batches evaluated every ``val_every_n_steps`` optimizer
    steps (0 = only at the start and the end); ``log_every_n_steps`` the training-curve window."""

    def __init__(self, encoder: SpladeEncoder, lr: float, weight_decay: float = 0.01,
                 warmup_steps: int = 0, max_steps: int = 1000, val_batches: list[dict] | None = None,
                 val_every_n_steps: int = 0, log_every_n_steps: int = 10) -> None:
        super().__init__()
        self.encoder = encoder
        self.val_batches = val_batches or []
        self.curves: list[dict] = []
        self._window = [0.0, 0.0, 0]  # summed loss, correct, labelled positions since the last row
        self.save_hyperparameters(ignore=["encoder", "val_batches"])

    def on_train_start(self) -> None:
        self.encoder.train()  # from_pretrained leaves models in eval mode (dropout off)
        if self.val_batches and self.global_step == 0:
            self._validate(0)

    def training_step(self, batch, batch_idx):
        loss_sum, correct, n = masked_lm_sums(self.encoder, batch)
        loss = loss_sum / max(n, 1)
        acc = correct / max(n, 1)
        self._window[0] += float(loss_sum.detach())
        self._window[1] += float(correct)
        self._window[2] += n
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/accuracy", acc, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        step, hp = self.global_step, self.hparams
        last = step >= hp.max_steps
        if self._window[2] and (step % max(hp.log_every_n_steps, 1) == 0 or last):
            s, c, n = self._window
            self.curves.append({"step": step, "split": "train", "loss": s / n, "accuracy": c / n})
            self._window = [0.0, 0.0, 0]
        if self.val_batches and (last or (hp.val_every_n_steps and step % hp.val_every_n_steps == 0)):
            if not self.curves or self.curves[-1]["split"] != "val" or self.curves[-1]["step"] != step:
                self._validate(step)

    @torch.no_grad()
    def _validate(self, step: int) -> dict:
        was_training = self.encoder.training
        self.encoder.eval()
        total, correct, n = 0.0, 0.0, 0
        for batch in self.val_batches:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            s, c, k = masked_lm_sums(self.encoder, batch)
            total, correct, n = total + float(s), correct + float(c), n + k
        self.encoder.train(was_training)
        row = {"step": step, "split": "val", "loss": total / max(n, 1), "accuracy": correct / max(n, 1)}
        self.curves.append(row)
        if step > 0 and self._trainer is not None:
            self.log("val/loss", row["loss"])
            self.log("val/accuracy", row["accuracy"])
        return row

    def validation_step(self, batch, batch_idx):
        loss, acc = masked_lm_loss(self.encoder, batch)
        n = batch["input_ids"].shape[0]
        self.log("val/loss", loss, batch_size=n, sync_dist=True)
        self.log("val/accuracy", acc, batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_linear(self.encoder, hp.lr, hp.weight_decay, hp.warmup_steps, hp.max_steps)
