"""EMLM pretraining data: which texts, how often, in which batches -- functions of (seed, position)."""
from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from splade_exp.data.corpus import LinesFile
from splade_exp.data.masking import IGNORE, WholeWordMaskCollator
from splade_exp.data.pretraining import (GlobalBatches, Masking, PretrainingData, TokenRows, build_rows,
                                         validation_batches, wanted_texts)

WORDS = ["river", "stone", "falls", "runs", "green", "cold", "light", "north", "deep", "slow", "bright", "old"]


def corpus(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct texts: "item <number-word> ..." (each text recognisable after tokenisation)."""
    rng = random.Random(seed)
    return [f"item {i} " + " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 9))) for i in range(n)]


@pytest.fixture(scope="module")
def tokenizer():
    from splade_exp.models.backbone import train_wordpiece

    return train_wordpiece(corpus(200) + [str(i) for i in range(200)], vocab_size=300)


def build(tmp_path, tokenizer, texts, name="rows", steps=10, batch=8, repetition=2.0, val=10, seed=0, vocab=None):
    path = tmp_path / f"{name}.txt"
    path.write_text("\n".join(texts) + "\n")
    out = tmp_path / name
    out.mkdir()
    meta = build_rows(out, LinesFile(path), tokenizer, vocab, 32, val, wanted_texts(steps, batch, repetition), batch,
                      seed)
    return out, meta


def decoded(tokenizer, rows: TokenRows) -> list[str]:
    return [tokenizer.decode(rows.row(i)[0], skip_special_tokens=True) for i in range(len(rows))]


def masking(tokenizer, wordpiece=False, rate=0.15):
    return Masking(rate, 0.8, 0.1, tokenizer.mask_token_id, tokenizer.pad_token_id, len(tokenizer), wordpiece)


def test_steps_x_batch_over_R_distinct_texts_beside_the_validation_texts(tmp_path, tokenizer):
    texts = corpus(100)
    out, meta = build(tmp_path, tokenizer, texts)  # 10 steps x 8 / R=2 = 40 training texts
    assert (meta["texts"], meta["val_texts"], meta["train_texts"], meta["wanted"]) == (100, 10, 40, 40)
    train, val = decoded(tokenizer, TokenRows(out, "train")), decoded(tokenizer, TokenRows(out, "val"))
    source = {t.lower() for t in texts}
    assert len(set(train)) == 40 and len(set(val)) == 10 and not set(train) & set(val)
    assert set(train) <= source and set(val) <= source
    numbers = sorted(int(t.split()[1]) for t in train)
    assert numbers != list(range(40))  # a sample of the corpus, not its first lines


def test_each_training_text_is_seen_R_times_one_epoch_after_the_other(tmp_path, tokenizer):
    out, _ = build(tmp_path, tokenizer, corpus(100))
    batches = GlobalBatches(TokenRows(out, "train"), 8, 0, masking(tokenizer))
    seen = [batches.global_rows(t).tolist() for t in range(10)]  # the pretraining's 10 steps
    assert Counter(r for rows in seen for r in rows) == {r: 2 for r in range(40)}
    assert sorted(r for rows in seen[:5] for r in rows) == list(range(40))  # epoch 0: each text once
    assert seen[:5] != seen[5:]  # epoch 1 in another order


def test_a_small_corpus_gives_training_every_text(tmp_path, tokenizer):
    _, meta = build(tmp_path, tokenizer, corpus(30))  # wants 40 after 10 held out: 20 exist
    assert (meta["val_texts"], meta["train_texts"], meta["wanted"]) == (10, 20, 40)  # seen 80 / 20 = 4 times
    with pytest.raises(ValueError, match=r"4 training texts after holding out pretrain.val_size=10; fewer than one "
                                         r"batch \(pretrain.batch_size=8\)"):
        build(tmp_path, tokenizer, corpus(14), name="tiny")


def test_the_seed_alone_decides_the_selection(tmp_path, tokenizer):
    texts = corpus(100)
    a, _ = build(tmp_path, tokenizer, texts, name="a")
    b, _ = build(tmp_path, tokenizer, texts, name="b")
    c, _ = build(tmp_path, tokenizer, texts, name="c", seed=1)
    for name in ("ids.bin", "codes.bin", "train.starts.npy", "train.lengths.npy", "val.starts.npy"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert set(decoded(tokenizer, TokenRows(a, "train"))) != set(decoded(tokenizer, TokenRows(c, "train")))


def _unpadded(batch: dict) -> list[tuple[list[int], list[int]]]:
    keep = batch["attention_mask"].bool()
    return [(batch["input_ids"][i][keep[i]].tolist(), batch["labels"][i][keep[i]].tolist())
            for i in range(len(keep))]


def test_two_ranks_read_and_mask_the_halves_of_each_global_batch(tmp_path, tokenizer):
    out, _ = build(tmp_path, tokenizer, corpus(100), vocab={w: i for i, w in enumerate(WORDS)})
    rows, m = TokenRows(out, "train"), masking(tokenizer, rate=0.5)
    one = GlobalBatches(rows, 8, 0, m)
    halves = [GlobalBatches(rows, 8, 0, m, rank=r, world_size=2) for r in range(2)]
    labelled = 0
    for t in (0, 3, 7, 12):  # across epochs
        whole = _unpadded(one[t])
        assert _unpadded(halves[0][t]) + _unpadded(halves[1][t]) == whole
        labelled += sum(1 for _, labels in whole for x in labels if x != IGNORE)
    assert labelled > 20  # masked words with unigram labels, not just padding


def test_a_resumed_loader_continues_the_stream(tmp_path, tokenizer):
    out, _ = build(tmp_path, tokenizer, corpus(100))
    data = PretrainingData(TokenRows(out, "train"), 8, 0, masking(tokenizer))
    fresh = iter(data.loader())
    straight = [next(fresh) for _ in range(9)]
    resumed = iter(data.loader(start=6))
    for expected in straight[6:]:
        got = next(resumed)
        assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert not torch.equal(straight[0]["labels"], straight[5]["labels"])  # the same texts, masked anew


@pytest.mark.parametrize("vocab", [None, {"river": 0, "stone": 1, "item": 2, "7": 3}])
def test_rows_are_masked_as_the_text_collator_masks_the_text(tmp_path, tokenizer, vocab):
    texts = ["Item 7 river stone falls cold", "item 12 North  deep river"]
    out, _ = build(tmp_path, tokenizer, texts, steps=1, batch=2, repetition=1, val=0, vocab=vocab)
    rows = TokenRows(out, "train")
    m = Masking(0.5, 0.5, 0.3, tokenizer.mask_token_id, tokenizer.pad_token_id, len(tokenizer), vocab is None)
    for i in range(len(rows)):
        text = tokenizer.decode(rows.row(i)[0], skip_special_tokens=True)
        got = m.batch([rows.row(i)], [torch.Generator().manual_seed(11)])
        expected = WholeWordMaskCollator(tokenizer, 32, vocab, 0.5, 0.5, 0.3, seed=11)([text])
        assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_validation_rows_are_masked_once(tmp_path, tokenizer):
    out, _ = build(tmp_path, tokenizer, corpus(100))
    rows, m = TokenRows(out, "val"), masking(tokenizer, wordpiece=True)
    a, b = validation_batches(rows, 4, 0, m), validation_batches(rows, 4, 0, m)
    assert [x["input_ids"].shape[0] for x in a] == [4, 4, 2]
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    assert all((x["labels"] != IGNORE).any(dim=1).all() for x in a)  # at least one masked word per text
