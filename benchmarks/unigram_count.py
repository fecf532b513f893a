"""Word counts for a unigram vocabulary over a 1 GB text file: throughput (MB/s) and peak memory.

Generates a ~1 GB text file in a temporary directory (``benchmarks/text_corpus.py``; deleted at
the end), then builds the unigram vocabulary of the file the way ``vocab=unigram
vocab.corpus=<file>`` does (:func:`splade_exp.vocab.unigram.build_unigram_vocab`: count every word,
select the top ``--size``, write ``vocab.tsv``) with the tokenizer of a real BERT-base vocabulary
(``backbone=splade_tiny``: 30,522 WordPieces, BERT's normaliser), each case in a fresh subprocess:

- ``previous``: what the vocabulary build did before the corpus was streamed -- read the file into
  a list of lines, then normalise and pre-tokenise text by text in one loop -- on the first
  ``--previous-mb`` MB only (at about 2 MB/s the whole file would take many minutes);
- ``streamed-1``: the streamed counter in the job's own process (``vocab.count_processes=1``);
- ``streamed-N``: the same in N worker processes (``vocab.count_processes=N``, default 2: this
  machine's cores), byte ranges of the file counted in parallel, counters added up.

Every case reports MB/s of the file, seconds and the peak resident set (its own and, for worker
processes, the largest worker's). The streamed cases' counts are checked equal to each other, and
on the ``previous`` case's prefix equal to the previous implementation's. Speed-ups are ratios of
MB/s measured in the same run; the JSON records the CPU and the load average (the machine is shared).

Usage::

    python benchmarks/unigram_count.py                       # -> benchmarks/results/unigram_count.json
    python benchmarks/unigram_count.py --gb 0.1 --out /tmp/x.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import loadavg, machine  # noqa: E402  (benchmarks/machine.py)

CHILD = r"""
import hashlib, json, os, resource, sys, time
from collections import Counter
from pathlib import Path
sys.path.insert(0, {repo!r})
os.environ["TOKENIZERS_PARALLELISM"] = "false"

def prefix_lines(path, limit):
    # the whole lines of path within its first limit bytes
    with open(path, encoding="utf-8") as fh:
        read = 0
        for line in fh:
            read += len(line.encode("utf-8"))
            if read > limit:
                return
            yield line

def digest(counts):
    text = json.dumps(sorted(counts.items()), ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()

def main():
    from transformers import AutoTokenizer
    from splade_exp.resolvers import _package_path
    from splade_exp.data.masking import split_words
    from splade_exp.vocab.unigram import build_unigram_vocab, select_unigrams, write_vocab
    tok = AutoTokenizer.from_pretrained(_package_path("cognition", "model"))
    path, case, limit, size, out = Path({path!r}), {case!r}, {limit}, {size}, Path({out!r})
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if case == "previous":  # read_lines, then count_words, as before streaming (same selection)
        lines = list(prefix_lines(path, limit))
        nbytes = sum(len(line.encode("utf-8")) for line in lines)
        texts = [line.strip() for line in lines if line.strip()]
        del lines
        t0 = time.perf_counter()  # from the list in memory, as read_lines returned it
        counts = Counter()
        for text in texts:
            counts.update(split_words(tok, text))
        write_vocab(out, select_unigrams(counts, size), counts)
    else:
        from splade_exp.data.corpus import LinesFile
        from splade_exp.vocab.counting import count_words
        source = path
        if limit < path.stat().st_size:  # the same lines as the previous case, for the equality check
            source = out / "prefix.txt"
            with open(source, "w", encoding="utf-8") as dst:
                dst.writelines(prefix_lines(path, limit))
            t0 = time.perf_counter()
        processes = int(case.split("-")[1])
        counts = count_words(tok, LinesFile(source), processes)
        write_vocab(out, select_unigrams(counts, size), counts)
        nbytes = Path(source).stat().st_size
    seconds = time.perf_counter() - t0
    print(json.dumps({{"case": case, "mb": nbytes / 1e6, "seconds": seconds, "mb_per_s": nbytes / 1e6 / seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "peak_rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                      "distinct_words": len(counts), "words": sum(counts.values()), "digest": digest(counts)}}))

if __name__ == "__main__":
    main()
"""


def run_case(path: Path, case: str, limit: int, size: int, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    script = work / "child.py"
    script.write_text(CHILD.format(repo=str(REPO), path=str(path), case=case, limit=limit, size=size,
                                   out=str(work / case)))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"case {case} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    from text_corpus import write_text_file

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gb", type=float, default=1.0, help="size of the generated file")
    p.add_argument("--previous-mb", type=float, default=64.0, help="prefix counted by the previous implementation")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--size", type=int, default=100_000, help="vocab.size")
    p.add_argument("--tmp", default=tempfile.gettempdir())
    p.add_argument("--out", default=str(RESULTS / "unigram_count.json"))
    args = p.parse_args(argv)
    start_load = loadavg()
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="unigram_count.") as tmp:
        work = Path(tmp)
        path = work / "corpus.txt"
        t0 = time.perf_counter()
        size = write_text_file(path, int(args.gb * 1e9))
        gen_s = time.perf_counter() - t0
        full, prefix = path.stat().st_size + 1, int(args.previous_mb * 1e6)
        previous = run_case(path, "previous", prefix, args.size, work)
        prefix_new = run_case(path, f"streamed-{args.processes}", prefix, args.size, work / "prefix")
        serial = run_case(path, "streamed-1", full, args.size, work)
        parallel = run_case(path, f"streamed-{args.processes}", full, args.size, work)
    summary = {
        "file_mb": size / 1e6, "generate_s": gen_s, "vocab_size": args.size, "tokenizer": "splade_tiny (BERT, 30,522)",
        "cases": {"previous": previous, "streamed-1": serial, f"streamed-{args.processes}": parallel,
                  f"streamed-{args.processes} (prefix)": prefix_new},
        "speedup_parallel_vs_serial": parallel["mb_per_s"] / serial["mb_per_s"],
        "speedup_serial_vs_previous": serial["mb_per_s"] / previous["mb_per_s"],
        "speedup_parallel_vs_previous": parallel["mb_per_s"] / previous["mb_per_s"],
        "counts_equal_serial_parallel": serial["digest"] == parallel["digest"],
        "counts_equal_previous_streamed_on_prefix": previous["digest"] == prefix_new["digest"],
        "machine": machine(start_load),
    }
    from splade_exp.io import write_json

    write_json(args.out, summary)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
