"""ESPLADE and random initialisation of the output rows, against hand-computed numbers."""
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from splade_exp.vocab.init import esplade_decoder, initial_decoder, random_decoder, wordpieces
from vocab_toys import TOY_VOCAB, toy_tokenizer


def wordpiece_head():
    """Row i = [i, i*i], bias i/10: the WordPiece decoder of the toy vocabulary (H = 2)."""
    dec = nn.Linear(2, len(TOY_VOCAB))
    with torch.no_grad():
        i = torch.arange(len(TOY_VOCAB), dtype=torch.float)
        dec.weight.copy_(torch.stack([i, i * i], dim=1))
        dec.bias.copy_(i / 10)
    return dec


WORDS = ["cats", "cafe", "the", "zzz"]


def test_pieces_of_the_toy_words():
    # cats = cat ##s (6, 10); cafe = ca ##fe (11, 12); the = 5; zzz = [UNK] (1)
    assert wordpieces(toy_tokenizer(), WORDS) == [[6, 10], [11, 12], [5], [1]]


def test_esplade_rows_are_means_of_the_piece_rows():
    dec = esplade_decoder(wordpiece_head(), wordpieces(toy_tokenizer(), WORDS), bias="mean")
    # cats: ([6, 36] + [10, 100]) / 2; cafe: ([11, 121] + [12, 144]) / 2; the: [5, 25]; zzz: [1, 1]
    assert dec.weight.tolist() == [[8.0, 68.0], [11.5, 132.5], [5.0, 25.0], [1.0, 1.0]]
    # biases: (0.6 + 1.0) / 2, (1.1 + 1.2) / 2, 0.5, 0.1
    assert dec.bias.tolist() == pytest.approx([0.8, 1.15, 0.5, 0.1])


def test_esplade_zero_bias_and_untied_copy():
    wp = wordpiece_head()
    dec = esplade_decoder(wp, wordpieces(toy_tokenizer(), WORDS), bias="zero")
    assert dec.bias.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert dec.weight.data_ptr() != wp.weight.data_ptr()
    with pytest.raises(ValueError, match="init.bias"):
        esplade_decoder(wp, [[5]], bias="median")


def test_random_rows():
    dec = random_decoder(64, 3000, 0.02, seed=0)
    assert dec.weight.shape == (3000, 64) and dec.bias.abs().sum() == 0
    assert dec.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert dec.weight.mean().abs().item() < 1e-3


def test_init_choices_and_their_errors():
    tok, wp = toy_tokenizer(), wordpiece_head()
    pretrained = OmegaConf.create({"name": "pretrained", "kind": "pretrained"})
    random = OmegaConf.create({"name": "random", "kind": "random", "std": 0.02})
    esplade = OmegaConf.create({"name": "esplade", "kind": "esplade", "bias": "mean"})
    assert initial_decoder(pretrained, "wordpiece", wp, tok, None, 0) is wp
    assert initial_decoder(random, "wordpiece", wp, tok, None, 0).weight.shape == wp.weight.shape
    assert initial_decoder(random, "unigram", wp, tok, WORDS, 0).weight.shape == (4, 2)
    assert initial_decoder(esplade, "unigram", wp, tok, WORDS, 0).weight.shape == (4, 2)
    with pytest.raises(ValueError, match="init=pretrained .* unigram"):
        initial_decoder(pretrained, "unigram", wp, tok, WORDS, 0)
    with pytest.raises(ValueError, match="needs vocab=unigram"):
        initial_decoder(esplade, "wordpiece", wp, tok, None, 0)
