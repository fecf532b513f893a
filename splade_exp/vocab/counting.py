"""Word frequencies of a corpus, counted in parallel processes without holding the corpus.

The corpus (:mod:`splade_exp.data.corpus`) is cut into parts -- byte ranges of a text file cut at
line starts, row ranges of a dataset, slices of in-memory texts -- four per process for balance.
Counting is exact whatever the cut: a part boundary is always a text boundary, and the word
counts of a corpus are the sums of the counts of its texts.

When the tokenizer's normaliser and pre-tokeniser are local to the ASCII space
(:func:`splade_exp.data.words.space_local`: BERT's and most WordPiece tokenizers), the words of a
text are the words of its space-separated chunks, so counting runs in two phases:

1. *chunks*: each process splits its parts at spaces and newlines with ``str.split`` and counts the
   chunks (C speed); the parent adds the chunk counters up;
2. *words*: the distinct chunks, split among the processes, go through the tokenizer's normaliser
   and pre-tokeniser once each, their words weighted by the chunk's count.

Natural text has few distinct chunks for its size, and the tokenizer's per-call cost (about
2--4 MB/s of text per process when it is called once per text) is paid on them alone, once: a
chunk met in every part is still normalised once (normalising per part would repeat the work of
the most frequent chunks in every part). The parent holds the distinct chunks, never the text.
Other tokenizers are counted text by text, each process its parts.

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


def chunk_counts(part: Part) -> Counter:
    """Phase 1: how often each space-separated chunk occurs in ``part``."""
    chunks: Counter = Counter()
    for block in read_blocks(part):
        chunks.update(block.replace("\n", " ").split(" "))
    chunks.pop("", None)
    return chunks


def words_of_chunks(backend, chunks) -> Counter:
    """Phase 2: word counts of ``(chunk, count)`` pairs."""
    counts: Counter = Counter()
    for chunk, n in chunks:
        for word in backend_words(backend, chunk):
            counts[word] += n
    return counts


def count_part(backend, part: Part, local: bool) -> Counter:
    """Word counts of one part of a corpus, in this process."""
    if local:
        return words_of_chunks(backend, chunk_counts(part).items())
    counts: Counter = Counter()
    for text in read_part(part):
        counts.update(backend_words(backend, text))
    return counts


def _tokenizer(state: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(state)


def _words_in_worker(state: str, chunks: list) -> Counter:
    return words_of_chunks(_tokenizer(state), chunks)


def _texts_in_worker(state: str, part: Part) -> Counter:
    return count_part(_tokenizer(state), part, local=False)


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

    parts, state = source.parts(processes * PARTS_PER_PROCESS), backend.to_str()
    counts = Counter()
    try:
        with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) as pool:
            if not local:
                for part_counts in pool.map(_texts_in_worker, [state] * len(parts), parts):
                    counts.update(part_counts)
                return counts
            chunks: Counter = Counter()
            for part_chunks in pool.map(chunk_counts, parts):
                chunks.update(part_chunks)
            items = list(chunks.items())
            del chunks
            n = processes * PARTS_PER_PROCESS
            for part_counts in pool.map(_words_in_worker, [state] * n, [items[i::n] for i in range(n)]):
                counts.update(part_counts)
    except BrokenProcessPool:
        raise RuntimeError(
            f"counting the words of {source!r}: a worker process died. If this was started from a script, its "
            "entry point must sit under `if __name__ == \"__main__\":` (spawned workers import the main module); "
            "otherwise count in this process with vocab.count_processes=1") from None
    return counts
