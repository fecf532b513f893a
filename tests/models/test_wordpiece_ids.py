"""The offline backbone's WordPiece ids are the same in every process: they seed the model's
initialisation, so a run id must always mean the same backbone."""
from __future__ import annotations

import json
import subprocess
import sys

from splade_exp.models.backbone import SPECIAL_TOKENS, train_wordpiece

# The smoke experiment's collection and tokenizer size, built as a job builds its backbone.
CODE = """
import json, sys
from splade_exp.data.sources import Synthetic
from splade_exp.models.backbone import train_wordpiece
from splade_exp.stages.backbone_mlm import texts_for_backbone
collection = Synthetic(sys.argv[1], n_docs=300, n_train_queries=400, n_dev_queries=20, n_test_queries=40).load()
print(json.dumps(train_wordpiece(texts_for_backbone(collection), vocab_size=400).get_vocab()))
"""


def _vocab_in_fresh_process(cache_dir) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", CODE, str(cache_dir)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_ids_do_not_depend_on_the_process(tmp_path):
    # The tokenizers trainer numbers the "##" alphabet in hash-map order, which changes from
    # process to process (36 of the 400 ids differed between two builds of this vocabulary).
    vocabs = [_vocab_in_fresh_process(tmp_path) for _ in range(3)]
    assert vocabs[0] == vocabs[1] == vocabs[2]


def test_special_tokens_first_then_pieces_in_order():
    texts = ["alpha beta gamma", "alphabet betamax", "gamma ray"] * 20
    tok = train_wordpiece(texts, vocab_size=60)
    vocab = tok.get_vocab()
    by_id = sorted(vocab, key=vocab.get)
    assert by_id[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS
    assert by_id[len(SPECIAL_TOKENS):] == sorted(by_id[len(SPECIAL_TOKENS):])
    assert sorted(vocab.values()) == list(range(len(vocab)))
    pieces = tok.convert_ids_to_tokens(tok("alphabet gamma")["input_ids"])
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and "gamma" in pieces
