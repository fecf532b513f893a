"""EMLM statistics (METHOD §5) on two toy documents whose logits are written by hand."""
import math

import pytest
import torch

from splade_exp.models.encoder import SpladeEncoder
from splade_exp.stages.emlm_stats import RunningMoments, emlm_statistics
from vocab_toys import LookupTrunk, toy_tokenizer


def lookup_encoder(impl="chunked", chunk_size=2):
    """Token logits (|V| = 3) = a table of the toy tokenizer's ids, through an identity decoder.
    ``chunk_size=2`` splits the vocabulary into two chunks."""
    table = torch.zeros(15, 3)
    table[0] = torch.tensor([100.0, 100.0, 100.0])  # [PAD]: must never count
    table[2] = torch.tensor([-5.0, -5.0, -5.0])     # [CLS]
    table[3] = torch.tensor([-6.0, -6.0, -6.0])     # [SEP]
    table[5] = torch.tensor([1.0, -2.0, 0.0])       # the
    table[6] = torch.tensor([3.0, -1.0, -4.0])      # cat
    table[7] = torch.tensor([-1.0, -3.0, 2.0])      # sat
    dec = torch.nn.Linear(3, 3)
    with torch.no_grad():
        dec.weight.copy_(torch.eye(3))
        dec.bias.zero_()
    return SpladeEncoder(LookupTrunk(table), dec, "decoder", pooling_impl=impl, chunk_size=chunk_size)


# doc 1 "the cat" = [CLS] the cat [SEP] -> z = max = [3, -1, 0]; non-negative terms: 2
# doc 2 "sat"     = [CLS] sat [SEP] [PAD] -> z = [-1, -3, 2]; non-negative terms: 1
DOCS = ["the cat", "sat"]


@pytest.mark.parametrize("impl", ["naive", "chunked"])
@pytest.mark.parametrize("batch_size", [1, 2])
def test_statistics_by_hand(batch_size, impl):
    enc = lookup_encoder(impl)
    s = emlm_statistics(enc, toy_tokenizer(), DOCS, max_length=8, batch_size=batch_size, ks=(2, None))
    # top-2: doc 1 [3, 0] (mean 1.5, std 1.5), doc 2 [2, -1] (mean 0.5, std 1.5)
    assert s["doc-score-avg@2"] == pytest.approx(1.0)
    assert s["doc-score-std@2"] == pytest.approx(1.5)
    # all: doc 1 mean 2/3, std sqrt(26)/3; doc 2 mean -2/3, std sqrt(38)/3
    assert s["doc-score-avg@all"] == pytest.approx(0.0, abs=1e-12)
    assert s["doc-score-std@all"] == pytest.approx((math.sqrt(26) + math.sqrt(38)) / 6)  # 1.877238
    # 21 token logits (7 real positions x 3): sum -71, sum of squares 411
    assert s["logit-score-std"] == pytest.approx(math.sqrt(411 / 21 - (71 / 21) ** 2))  # 2.853173
    # pooled entries [3, -1, 0, -1, -3, 2]: mean 0, sum of squares 24 -> std 2
    assert s["logit-score-std-pooled"] == pytest.approx(2.0)
    assert s["non-neg-terms-avg"] == 1.5 and s["non-neg-terms-std"] == 0.5
    assert s["docs"] == 2


def test_default_k_is_capped_at_the_vocabulary():
    s = emlm_statistics(lookup_encoder(), toy_tokenizer(), DOCS, max_length=8)
    assert s["doc-score-avg@10"] == s["doc-score-avg@100"] == s["doc-score-avg@all"]


def test_running_moments_match_one_pass():
    x = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0])
    m = RunningMoments()
    m.add(x[:2])
    m.add(x[2:])
    assert m.std == pytest.approx(x.std(correction=0).item())
