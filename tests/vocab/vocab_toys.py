"""Toy tokenizer and encoder for the vocabulary tests: every id and row is written by hand."""
from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

# WordPiece vocabulary of the toy tokenizer (id = position).
TOY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",   # 0-4
             "the", "cat", "sat", "on", "mat",               # 5-9
             "##s", "ca", "##fe", ".", "!"]                  # 10-14


def toy_tokenizer():
    """A BERT-style fast tokenizer (lower-casing, accent stripping, punctuation split)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(TOY_VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


class LookupTrunk(nn.Module):
    """A masked-LM "trunk" whose features are a fixed lookup table of the input ids."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Embedding.from_pretrained(table.float(), freeze=False)

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.table(input_ids))
