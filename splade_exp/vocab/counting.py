"""Word frequencies of a corpus, counted in parallel processes without holding the corpus.

The corpus (:mod:`splade_exp.data.corpus`) is cut into parts -- byte ranges of a text file cut at
line starts, row ranges of a dataset, slices of in-memory texts -- four per process for balance;
each process counts its parts and the parent adds the counters up. Counting is exact whatever the
cut: a part boundary is always a text boundary, and the word counts of a corpus are the sums of
the counts of its texts.

Within a part, when the tokenizer's normaliser and pre-tokeniser are local to the ASCII space
(:func:`splade_exp.data.words.space_local`: BERT's and most WordPiece tokenizers), a block of
text is split at spaces and newlines by ``str.split`` (C speed), each *distinct* chunk is counted
once, and only the distinct chunks go through the tokenizer's normaliser and pre-tokeniser, their
words weighted by the chunk's count. In natural text the distinct chunks are a small fraction of
all chunks, and the tokenizer's per-call cost (about 2--4 MB/s of text per process when called
once per text) is paid on them alone. Other tokenizers are counted text by text.

Workers are started with ``spawn`` (no copy of the parent's threads, locks or CUDA state) and
import only this module, :mod:`splade_exp.data.corpus` and ``tokenizers``; the tokenizer travels
as its JSON serialisation. As with any spawned worker, a script that ends up here must keep its
entry point under ``if __name__ == "__main__":`` (the command line does).
"""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from splade_exp.data.corpus import Part, read_blocks, read_part
from splade_exp.data.words import backend_words, space_local

PARTS_PER_PROCESS = 4


def available_cpus() -> int:
    """CPUs this process may run on (the job's allocation under Slurm, not the node's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _backend(tokenizer):
    """The ``tokenizers.Tokenizer`` of a Hugging Face fast tokenizer (or the backend itself)."""
    return getattr(tokenizer, "backend_tokenizer", tokenizer)


def count_part(backend, part: Part, local: bool) -> Counter:
    """Word counts of one part of a corpus."""
    counts: Counter = Counter()
    if local:
        chunks: Counter = Counter()
        for block in read_blocks(part):
            chunks.update(block.replace("\n", " ").split(" "))
        chunks.pop("", None)
        for chunk, n in chunks.items():
            for word in backend_words(backend, chunk):
                counts[word] += n
    else:
        for text in read_part(part):
            counts.update(backend_words(backend, text))
    return counts


def _count_in_worker(tokenizer_json: str, part: Part, local: bool) -> Counter:
    from tokenizers import Tokenizer

    return count_part(Tokenizer.from_str(tokenizer_json), part, local)


def count_words(tokenizer, source, processes: int | None = None) -> Counter:
    """Frequency of every normalised word of ``source`` (a corpus source, or any list of texts).

    ``processes``: worker processes (None: the CPUs this process may use; 1: in this process).
    """
    from splade_exp.data.corpus import MemoryTexts

    if not hasattr(source, "parts"):
        source = MemoryTexts(list(source), "texts")
    backend = _backend(tokenizer)
    local = space_local(backend)
    processes = available_cpus() if processes is None else int(processes)
    if processes <= 1:
        counts: Counter = Counter()
        for part in source.parts(1):
            counts.update(count_part(backend, part, local))
        return counts
    import multiprocessing as mp

    parts = source.parts(processes * PARTS_PER_PROCESS)
    state = backend.to_str()
    counts = Counter()
    try:
        with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) as pool:
            for part_counts in pool.map(_count_in_worker, [state] * len(parts), parts, [local] * len(parts)):
                counts.update(part_counts)
    except BrokenProcessPool:
        raise RuntimeError(
            f"counting the words of {source!r}: a worker process died. If this was started from a script, its "
            "entry point must sit under `if __name__ == \"__main__\":` (spawned workers import the main module); "
            "otherwise count in this process with vocab.count_processes=1") from None
    return counts
