"""Text corpora read as streams: pretraining texts and unigram counts never hold a corpus in memory.

A corpus spec (``pretrain.corpus``, ``vocab.corpus``) is one of

- ``in_domain``: the collection's documents (already in memory as the collection);
- ``general``: the collection's general corpus (``data.general_corpus`` or ``general.txt``), a text file;
- a path to a text file: one text per line (``\\n``); blank lines are skipped, texts are stripped;
- a path to a Parquet or JSON / JSON-lines file (``.parquet``, ``.json``, ``.jsonl``), or a directory
  of such files (all files of the first extension found, in name order): a local Hugging Face
  dataset, read through ``datasets`` (converted once into its memory-mapped Arrow cache under
  ``<artifacts_dir>/hf_datasets``); the text is the column ``text_field``.

Every source iterates its texts in a fixed order (:meth:`texts`) and splits into :meth:`parts` that
other processes can read on their own (byte ranges of a text file cut at line starts, row ranges
of a dataset, slices of an in-memory list). :func:`read_part` reads one part, anywhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from splade_exp.data.collection import DataError, check_readable

BLOCK = 8 << 20  # bytes read at a time from a text file
HF_SUFFIXES = (".parquet", ".jsonl", ".json")


@dataclass(frozen=True)
class Part:
    """A piece of a corpus another process can read: ``kind`` is ``lines``, ``hf`` or ``memory``."""
    kind: str
    source: object        # a path (lines), an HfTexts (hf), or the texts themselves (memory)
    start: int = 0        # bytes (lines) or rows (hf)
    stop: int = -1


class LinesFile:
    """A text file, one text per line."""

    def __init__(self, path: str | os.PathLike, key: str = "pretrain.corpus / vocab.corpus") -> None:
        self.path = check_readable(path, "text corpus", key)

    def __repr__(self) -> str:
        return f"LinesFile({self.path})"

    def texts(self) -> Iterator[str]:
        return read_part(Part("lines", self.path, 0, self.path.stat().st_size))

    def parts(self, k: int) -> list[Part]:
        """``k`` byte ranges of about equal size, each starting at the start of a line."""
        size = self.path.stat().st_size
        cuts = [0]
        with open(self.path, "rb") as fh:
            for i in range(1, k):
                fh.seek(max(size * i // k - 1, cuts[-1]))
                fh.readline()  # to the start of the next line
                cuts.append(min(fh.tell(), size))
        cuts.append(size)
        return [Part("lines", self.path, a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


class HfTexts:
    """A local Parquet/JSON dataset (file or directory) read through ``datasets``; texts are ``text_field``."""

    def __init__(self, path: str | os.PathLike, text_field: str = "text", cache_dir: str | os.PathLike | None = None,
                 key: str = "pretrain.corpus / vocab.corpus") -> None:
        path = Path(os.path.expanduser(str(path)))
        if path.is_dir():
            files = []
            for suffix in HF_SUFFIXES:
                files = sorted(p for p in path.iterdir() if p.suffix.lower() == suffix and not p.name.startswith("."))
                if files:
                    break
            if not files:
                raise DataError(f"{path}: no {'/'.join(HF_SUFFIXES)} files in this directory; check {key}")
        else:
            files = [check_readable(path, "dataset file", key)]
        self.path, self.files, self.text_field, self.key = path, [str(f) for f in files], text_field, key
        self.cache_dir = str(Path(cache_dir) / "hf_datasets") if cache_dir else None

    def __repr__(self) -> str:
        return f"HfTexts({self.path}, text_field={self.text_field!r})"

    def dataset(self):
        """The memory-mapped ``datasets.Dataset`` (built into the Arrow cache on first use)."""
        import datasets

        suffix = Path(self.files[0]).suffix.lower()
        builder = "parquet" if suffix == ".parquet" else "json"
        try:
            ds = datasets.load_dataset(builder, data_files=self.files, split="train", cache_dir=self.cache_dir)
        except Exception as err:  # datasets/pyarrow raise many types
            raise DataError(f"{self.path}: cannot be read as {builder} ({type(err).__name__}: {err}); fix the file or "
                            f"check {self.key}") from None
        if self.text_field not in ds.column_names:
            raise DataError(f"{self.path}: no column {self.text_field!r} (it has {ds.column_names}); set the "
                            "text_field of pretrain / vocab to the column that holds the text")
        return ds.select_columns([self.text_field])

    def texts(self) -> Iterator[str]:
        return read_part(Part("hf", self, 0, -1))

    def parts(self, k: int) -> list[Part]:
        n = len(self.dataset())
        cuts = [n * i // k for i in range(k + 1)]
        return [Part("hf", self, a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


class MemoryTexts:
    """Texts already in memory (the collection's documents): a list of references, not a copy."""

    def __init__(self, texts: Sequence[str], name: str = "in_domain") -> None:
        self.items, self.name = texts, name

    def __repr__(self) -> str:
        return f"MemoryTexts({self.name}, {len(self.items)} texts)"

    def texts(self) -> Iterator[str]:
        return read_part(Part("memory", self.items))

    def parts(self, k: int) -> list[Part]:
        n = len(self.items)
        cuts = [n * i // k for i in range(k + 1)]
        return [Part("memory", self.items[a:b]) for a, b in zip(cuts, cuts[1:]) if b > a]


def _line_number(path: Path, offset: int) -> int:
    """1-based number of the line holding byte ``offset`` of ``path`` (read only to report an error)."""
    count, done = 1, 0
    with open(path, "rb") as fh:
        while done < offset:
            block = fh.read(min(BLOCK, offset - done))
            if not block:
                break
            count += block.count(b"\n")
            done += len(block)
    return count


def read_blocks(part: Part) -> Iterator[str]:
    """The texts of ``part`` in large strings, texts separated by ``\\n`` (blank lines included):
    what a counter that splits at whitespace needs, without a Python step per text."""
    if part.kind != "lines":
        batch: list[str] = []
        for text in read_part(part):
            batch.append(text)
            if len(batch) == 10_000:
                yield "\n".join(batch)
                batch = []
        if batch:
            yield "\n".join(batch)
        return
    path = Path(part.source)
    with open(path, "rb") as fh:
        fh.seek(part.start)
        pos, carry = part.start, b""
        while pos < part.stop:
            data = fh.read(min(BLOCK, part.stop - pos))
            if not data:
                break
            start = pos - len(carry)
            pos += len(data)
            data = carry + data
            cut = data.rfind(b"\n") + 1 if pos < part.stop else len(data)
            block, carry = data[:cut], data[cut:]
            try:
                yield block.decode("utf-8")
            except UnicodeDecodeError as err:
                line = _line_number(path, start + err.start)
                raise DataError(f"{path}:{line}: not UTF-8 text ({err.reason}); re-encode the file as UTF-8") from None


def read_part(part: Part) -> Iterator[str]:
    """The non-blank, stripped texts of ``part``, in corpus order."""
    if part.kind == "memory":
        for text in part.source:
            text = text.strip()
            if text:
                yield text
    elif part.kind == "lines":
        for block in read_blocks(part):
            for line in block.split("\n"):
                line = line.strip()
                if line:
                    yield line
    elif part.kind == "hf":
        ds = part.source.dataset()
        stop = len(ds) if part.stop < 0 else part.stop
        field = part.source.text_field
        for batch in ds.select(range(part.start, stop)).iter(batch_size=10_000):
            for text in batch[field]:
                text = "" if text is None else str(text).strip()
                if text:
                    yield text
    else:
        raise ValueError(f"unknown corpus part kind {part.kind!r}")


def text_source(spec: str, collection=None, text_field: str = "text", cache_dir=None, exclude=(),
                key: str = "pretrain.corpus / vocab.corpus"):
    """The source of a corpus spec (module doc); ``exclude``: document ids left out of ``in_domain``."""
    spec = str(spec)
    if spec == "in_domain":
        skip = set(exclude)
        texts = list(collection.corpus.values()) if not skip else \
            [t for i, t in collection.corpus.items() if i not in skip]
        return MemoryTexts(texts)
    if spec == "general":
        if collection.general_path is None:
            raise DataError(f"{collection.path}: no general corpus; set data.general_corpus to a text file "
                            "(one paragraph per line)")
        return LinesFile(collection.general_path, "data.general_corpus")
    path = Path(os.path.expanduser(spec))
    if not path.exists():
        raise DataError(f"{path}: {key} is not 'in_domain', 'general' or an existing file or directory")
    if path.is_dir() or path.suffix.lower() in HF_SUFFIXES:
        return HfTexts(path, text_field, cache_dir, key)
    return LinesFile(path, key)
