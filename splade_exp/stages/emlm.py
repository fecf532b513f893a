"""(Expanded) masked-LM pretraining of the head: softmax cross-entropy over the output vocabulary,
computed only at labelled (masked) positions, so the B x L x |V| logits are never formed."""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from splade_exp.data.masking import IGNORE
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.stages.optim import adamw_linear


def masked_lm_loss(encoder: SpladeEncoder, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, top-1 accuracy) over the labelled positions of ``batch``."""
    h = encoder.features(batch["input_ids"], batch["attention_mask"])
    sel = batch["labels"] != IGNORE
    if not sel.any():
        zero = h.sum() * 0.0
        return zero, zero.detach()
    logits = encoder.decoder(h[sel])  # (N_masked, |V|)
    target = batch["labels"][sel]
    loss = F.cross_entropy(logits.float(), target)
    acc = (logits.argmax(-1) == target).float().mean()
    return loss, acc


class EmlmModule(L.LightningModule):
    def __init__(self, encoder: SpladeEncoder, lr: float, weight_decay: float = 0.01,
                 warmup_steps: int = 0, max_steps: int = 1000) -> None:
        super().__init__()
        self.encoder = encoder
        self.save_hyperparameters(ignore=["encoder"])

    def on_train_start(self) -> None:
        self.encoder.train()  # from_pretrained leaves models in eval mode (dropout off)

    def training_step(self, batch, batch_idx):
        loss, acc = masked_lm_loss(self.encoder, batch)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/accuracy", acc, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = masked_lm_loss(self.encoder, batch)
        n = batch["input_ids"].shape[0]
        self.log("val/loss", loss, batch_size=n, sync_dist=True)
        self.log("val/accuracy", acc, batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_linear(self.encoder, hp.lr, hp.weight_decay, hp.warmup_steps, hp.max_steps)
