"""Unigram vocabulary selection and EMLM label construction, on hand-written toy text."""
from collections import Counter

import pytest
import torch

from splade_exp.data.masking import IGNORE, WholeWordMaskCollator, split_words
from splade_exp.vocab.unigram import count_words, read_vocab, select_unigrams, write_vocab
from vocab_toys import toy_tokenizer

TEXTS = ["The cat sat.", "the CAT", "Café café cafe", "!!! ..."]


def test_words_are_the_tokenizers_normalised_words():
    tok = toy_tokenizer()
    assert split_words(tok, "Café CAT!") == ["cafe", "cat", "!"]


def test_ranking_by_frequency_ties_by_word_punctuation_dropped():
    counts = count_words(toy_tokenizer(), TEXTS)
    # by hand: cafe 3, the 2, cat 2, sat 1, "." 4 and "!" 3 (no alphanumeric character: dropped)
    assert counts["cafe"] == 3 and counts["the"] == 2 and counts["cat"] == 2 and counts["."] == 4
    assert select_unigrams(counts, 4) == ["cafe", "cat", "the", "sat"]  # cat < the on the tie
    assert select_unigrams(counts, 2) == ["cafe", "cat"]


def test_size_above_distinct_words_names_the_key_and_the_count():
    counts = count_words(toy_tokenizer(), TEXTS)
    with pytest.raises(ValueError, match=r"vocab\.size=5 .*\(4\)"):
        select_unigrams(counts, 5)


def test_vocab_file_round_trip(tmp_path):
    counts = count_words(toy_tokenizer(), TEXTS)
    write_vocab(tmp_path, ["cafe", "cat"], counts)
    assert (tmp_path / "vocab.tsv").read_text() == "cafe\t3\ncat\t2\n"
    assert read_vocab(tmp_path) == ["cafe", "cat"]


def test_unigram_labels_with_every_word_masked():
    tok = toy_tokenizer()
    # "the cats sat": [CLS] the cat ##s sat [SEP] = 2 5 6 10 7 3; "cats" is not in U
    collate = WholeWordMaskCollator(tok, 16, {"the": 0, "sat": 1}, mask_rate=1.0, mask_token_prob=1.0,
                                    random_token_prob=0.0)
    out = collate(["The cats sat", "sat"])
    assert out["input_ids"].tolist() == [[2, 4, 4, 4, 4, 3], [2, 4, 3, 0, 0, 0]]
    assert out["labels"].tolist() == [[IGNORE, 0, IGNORE, IGNORE, 1, IGNORE],
                                      [IGNORE, 1, IGNORE, IGNORE, IGNORE, IGNORE]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]


def test_wordpiece_labels_label_every_piece():
    collate = WholeWordMaskCollator(toy_tokenizer(), 16, None, mask_rate=1.0, mask_token_prob=1.0,
                                    random_token_prob=0.0)
    out = collate(["The cats sat"])
    assert out["labels"].tolist() == [[IGNORE, 5, 6, 10, 7, IGNORE]]


def test_masking_is_whole_word_and_labels_sit_on_first_pieces():
    collate = WholeWordMaskCollator(toy_tokenizer(), 32, {"cats": 0, "the": 1}, mask_rate=0.5,
                                    mask_token_prob=1.0, random_token_prob=0.0, seed=3)
    # [CLS] the cat ##s sat on the mat . [SEP]
    words = {1: [1], 2: [2, 3], 4: [4], 5: [5], 6: [6], 7: [7], 8: [8]}
    label_of = {1: 1, 2: 0, 6: 1}  # first piece -> id in U; sat, on, mat, "." are not in U
    out = collate(["the cats sat on the mat ."] * 16)
    seen_masked = set()
    for row, labels in zip(out["input_ids"], out["labels"]):
        masked = row == 4
        for first, pieces in words.items():
            assert len(set(masked[pieces].tolist())) == 1  # a word is masked whole or not at all
            if masked[first]:
                seen_masked.add(first)
            expected = label_of.get(first, IGNORE) if masked[first] else IGNORE
            assert labels[first].item() == expected
        assert labels[3].item() == IGNORE  # "##s" never carries a label
        assert masked.any()
    assert len(seen_masked) > 3  # the seed does mask different words in different rows


# --------------------------------------------------------------------------- parallel counting
# By hand, over the lines below (the toy tokenizer lower-cases, strips accents, splits punctuation):
# the 4, cat 3, cafe 3, sat 2, "." 3, "!" 1, "mat" 1, on 1, "ab" 1 ("a\x1fb": the control character is
# removed inside the word, it does not split it), s 1 (from "cat's": "cat" "'" "s"), "'" 1.
FILE_LINES = ["The cat sat.", "", "the CAT on the mat!", "Café café cafe", "  \t ", "the cat's. sat.", "a\x1fb"]
FILE_COUNTS = {"the": 4, "cat": 3, "cafe": 3, "sat": 2, ".": 3, "!": 1, "mat": 1, "on": 1, "ab": 1, "s": 1, "'": 1}


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(FILE_LINES) + "\n", encoding="utf-8")
    return path


def test_counts_of_a_file_by_hand_serial_and_in_two_processes(corpus_file):
    from splade_exp.data.corpus import LinesFile

    tok = toy_tokenizer()
    serial = count_words(tok, LinesFile(corpus_file), processes=1)
    assert dict(serial) == FILE_COUNTS
    parallel = count_words(tok, LinesFile(corpus_file), processes=2)  # 8 parts of a 90-byte file
    assert parallel == serial
    assert count_words(tok, FILE_LINES, processes=2) == serial  # in-memory texts, sliced over processes


def test_any_cut_of_the_file_counts_the_same(corpus_file):
    from collections import Counter

    from splade_exp.data.corpus import LinesFile
    from splade_exp.vocab.counting import count_part

    backend = toy_tokenizer().backend_tokenizer
    for k in range(1, 12):
        for local in (True, False):  # split at spaces and count distinct chunks / word by word per text
            total = Counter()
            for part in LinesFile(corpus_file).parts(k):
                total.update(count_part(backend, part, local))
            assert dict(total) == FILE_COUNTS, (k, local)


def test_only_space_local_tokenizers_take_the_chunk_path():
    from tokenizers import pre_tokenizers

    from splade_exp.data.words import space_local

    tok = toy_tokenizer()
    assert space_local(tok.backend_tokenizer)  # BERT normaliser + pre-tokeniser
    backend = tok.backend_tokenizer
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # "Ġworld": the space joins the word
    assert not space_local(backend)
    backend.pre_tokenizer = pre_tokenizers.Punctuation()  # never splits at a space
    assert not space_local(backend)
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits()])
    assert space_local(backend)


def test_a_byte_level_tokenizer_is_counted_text_by_text(corpus_file):
    from tokenizers import pre_tokenizers

    from splade_exp.data.corpus import LinesFile

    tok = toy_tokenizer()
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    expected = Counter(w for line in FILE_LINES if line.strip() for w in split_words(tok, line.strip()))
    assert expected["Ġcat"] == 3 and expected["cat"] == 0  # "the cat": the space belongs to "Ġcat"
    assert count_words(tok, LinesFile(corpus_file), processes=2) == expected


def test_the_vocabulary_key_follows_its_size_and_its_corpus_file(tmp_path):
    from omegaconf import OmegaConf

    from splade_exp.hashing import config_hash
    from splade_exp.vocab.unigram import unigram_key

    corpus = tmp_path / "words.txt"
    corpus.write_text("alpha beta gamma\n")

    def key(size):
        vocab = OmegaConf.create({"kind": "unigram", "size": size, "corpus": str(corpus), "text_field": "text"})
        return config_hash(unigram_key(vocab, {"backbone": "b"}, {"source": "s"}))

    first = key(150)
    assert key(120) != first  # the file's byte count must not stand in for vocab.size
    corpus.write_text("alpha beta gamma delta\n")
    assert key(150) != first
