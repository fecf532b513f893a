"""EMLM cross-entropy is computed only at labelled (masked) positions: a case done by hand."""
import math

import pytest
import torch
from torch import nn

from splade_exp.data.masking import IGNORE
from splade_exp.models.encoder import SpladeEncoder
from splade_exp.stages.emlm import EmlmModule, context_free_bound, masked_lm_loss, masked_lm_sums
from vocab_toys import LookupTrunk


def toy_encoder():
    # features of input ids 0..3 (H = 2); id 3 has huge features that would dominate any loss
    trunk = LookupTrunk(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [50.0, -50.0]]))
    dec = nn.Linear(2, 3)  # |U| = 3: rows [1, 0], [0, 0], [0, 1]; bias 0
    with torch.no_grad():
        dec.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
        dec.bias.zero_()
    return SpladeEncoder(trunk, dec, "decoder")


BATCH = {
    "input_ids": torch.tensor([[3, 1, 3, 2]]),
    "attention_mask": torch.tensor([[1, 1, 1, 1]]),
    "labels": torch.tensor([[IGNORE, 0, IGNORE, 1]]),
}


def test_loss_and_accuracy_by_hand():
    # position 1: h = [1, 0] -> logits [1, 0, 0], target 0: -log(e / (e + 2)) = log(1 + 2/e)
    # position 3: h = [0, 1] -> logits [0, 0, 1], target 1: -log(1 / (e + 2)) = log(e + 2)
    loss, acc = masked_lm_loss(toy_encoder(), BATCH)
    expected = (math.log(1 + 2 / math.e) + math.log(math.e + 2)) / 2  # (0.551445 + 1.551445) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert loss.item() == pytest.approx(1.051445, abs=1e-6)
    assert acc.item() == 0.5  # position 1 predicts 0 (right), position 3 predicts 2 (wrong)


def test_unlabelled_positions_get_no_gradient_and_do_not_count():
    enc = toy_encoder()
    loss_sum, correct, n = masked_lm_sums(enc, BATCH)
    assert n == 2 and correct.item() == 1.0
    loss_sum.backward()
    grad = enc.mlm.table.weight.grad
    assert grad[3].abs().sum() == 0  # the id at the unlabelled positions 0 and 2
    assert grad[1].abs().sum() > 0 and grad[2].abs().sum() > 0


def test_no_label_gives_a_zero_loss():
    batch = {**BATCH, "labels": torch.full((1, 4), IGNORE)}
    loss, acc = masked_lm_loss(toy_encoder(), batch)
    assert loss.item() == 0.0 and acc.item() == 0.0


def test_module_validation_pools_positions():
    module = EmlmModule(toy_encoder(), lr=1e-3, val_batches=[BATCH, {**BATCH, "labels": torch.tensor([[IGNORE, 0, IGNORE, IGNORE]])}])
    row = module._validate(0)
    # three labelled positions: two right predictions of target 0 at position 1, one wrong at 3
    assert row["accuracy"] == pytest.approx(2 / 3)
    assert row["loss"] == pytest.approx((2 * math.log(1 + 2 / math.e) + math.log(math.e + 2)) / 3, abs=1e-6)
    assert module.curves == [row]


def test_context_free_bound_by_hand():
    # labels over two batches: word 3 three times, word 5 once, two unlabelled positions
    batches = [{"labels": torch.tensor([[3, IGNORE, 5]])}, {"labels": torch.tensor([[3, 3, IGNORE]])}]
    bound = context_free_bound(batches)
    assert bound["prior_accuracy"] == pytest.approx(0.75)  # always "3": right at 3 of 4 positions
    # entropy of (3/4, 1/4): 0.75 ln(4/3) + 0.25 ln 4 = 0.215762 + 0.346574
    assert bound["prior_loss"] == pytest.approx(0.562335, abs=1e-6)
    assert math.isnan(context_free_bound([{"labels": torch.tensor([[IGNORE]])}])["prior_accuracy"])
