"""Streamed corpora: texts in file order, cut into parts at text boundaries, errors naming file:line."""
import json

import pytest

from splade_exp.data.collection import DataError
from splade_exp.data.corpus import HfTexts, LinesFile, MemoryTexts, read_part, text_source

LINES = ["  first text  ", "", "second, with ünïcode", "   ", "third\r", "a\ttabbed one", "last without newline"]
EXPECTED = ["first text", "second, with ünïcode", "third", "a\ttabbed one", "last without newline"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("\n".join(LINES).encode("utf-8"))  # no final newline; one CRLF line
    return path


def test_a_text_file_gives_stripped_non_blank_lines_in_order(text_file):
    assert list(LinesFile(text_file).texts()) == EXPECTED


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 40])
def test_parts_of_a_text_file_start_at_line_starts_and_add_up_to_the_file(text_file, k):
    parts = LinesFile(text_file).parts(k)
    assert 1 <= len(parts) <= k and parts[0].start == 0 and parts[-1].stop == text_file.stat().st_size
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    assert [t for p in parts for t in read_part(p)] == EXPECTED


def test_bad_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nalso fine\nbroken \xff byte\n")
    with pytest.raises(DataError, match=rf"{path}:3: not UTF-8 text"):
        list(LinesFile(path).texts())


def test_parquet_and_jsonl_datasets_stream_their_text_column(tmp_path):
    import pandas as pd

    rows = [{"id": i, "body": t} for i, t in enumerate(["alpha one", "", None, "beta two", "gamma three"])]
    pd.DataFrame(rows).to_parquet(tmp_path / "c.parquet")
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("c.parquet", "c.jsonl"):
        source = text_source(str(tmp_path / name), text_field="body", cache_dir=tmp_path / "cache")
        assert isinstance(source, HfTexts)
        assert list(source.texts()) == ["alpha one", "beta two", "gamma three"]  # empty and null rows skipped
        assert [t for p in source.parts(2) for t in read_part(p)] == ["alpha one", "beta two", "gamma three"]
    with pytest.raises(DataError, match=r"c.parquet: no column 'text' \(it has \['id', 'body'\]\); set the text_field"):
        text_source(str(tmp_path / "c.parquet"), cache_dir=tmp_path / "cache").dataset()


def test_corpus_specs(tmp_path, text_file):
    from types import SimpleNamespace

    collection = SimpleNamespace(corpus={"d1": "doc one", "d2": " ", "d3": "doc three"}, general_path=None,
                                 path=tmp_path)
    source = text_source("in_domain", collection, exclude=["d3"])
    assert isinstance(source, MemoryTexts) and list(source.texts()) == ["doc one"]
    assert list(text_source("in_domain", collection).texts()) == ["doc one", "doc three"]
    assert isinstance(text_source(str(text_file)), LinesFile)
    with pytest.raises(DataError, match="no general corpus; set data.general_corpus"):
        text_source("general", collection)
    with pytest.raises(DataError, match="is not 'in_domain', 'general' or an existing file"):
        text_source(str(tmp_path / "missing.txt"), key="vocab.corpus")
