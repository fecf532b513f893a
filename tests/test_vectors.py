"""Vector shards on disk: layout, keying, and a SIGKILLed encoding relaunched encodes only the
shards it had not written."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from splade_exp.vectors import ShardedVectors

REPO = Path(__file__).resolve().parent.parent
SCALE = REPO / "tests" / "scale"


def test_shards_round_trip_and_report_what_is_missing(tmp_path):
    m = sp.random(10, 7, 0.4, format="csr", dtype=np.float32, rng=np.random.default_rng(0))
    store = ShardedVectors.open(tmp_path, "docs", {"model": "a"}, 10, 7, shard_size=4)
    assert store.num_shards == 3 and store.missing() == [0, 1, 2]
    store.write(2, m[8:])
    assert store.missing() == [0, 1]
    store.write(0, m[:4])
    store.write(1, m[4:8])
    assert store.complete() and (store.matrix() != m).nnz == 0
    with np.load(store.shard_path(0)) as z:
        assert (z["indptr"].dtype, z["indices"].dtype, z["data"].dtype) == (np.int64, np.int32, np.float32)
    with pytest.raises(ValueError, match=r"shard 1 must be \(4, 7\)"):
        store.write(1, m[:3])
    # another key is another directory; the same key finds the shards (and keeps its shard size)
    assert ShardedVectors.open(tmp_path, "docs", {"model": "b"}, 10, 7, 4).missing() == [0, 1, 2]
    again = ShardedVectors.open(tmp_path, "docs", {"model": "a"}, 10, 7, shard_size=5)
    assert again.path == store.path and again.shard_size == 4 and again.complete()
    with pytest.raises(ValueError, match="manifest.json: holds a 10x7 matrix, expected 11x7"):
        ShardedVectors.open(tmp_path, "docs", {"model": "a"}, 11, 7, 4)


CHILD = """
    import sys
    sys.path.insert(0, {scale!r})
    import ddp_worker as W
    from splade_exp.stages.evaluate import encode_to_store
    from splade_exp.vectors import ShardedVectors

    store = ShardedVectors.open({root!r}, "docs", {{"test": 1}}, len(W.texts()), W.VOCAB, 2)
    write = store.write
    def write_and_report(i, m):
        write(i, m)
        print("WROTE", i, flush=True)
        if i == 2:
            import time
            time.sleep(120)  # killed here, three shards on disk
    store.write = write_and_report
    encode_to_store(W.tiny_encoder(), W.WordTokenizer(), W.texts(), store, 32, batch_size=4)
"""


def test_killed_encoding_relaunched_encodes_only_missing_shards(tmp_path, monkeypatch):
    sys.path.insert(0, str(SCALE))
    import ddp_worker as W
    from splade_exp.stages.evaluate import encode, encode_to_store

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD.format(scale=str(SCALE), root=str(tmp_path)))],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    written = [proc.stdout.readline().split() for _ in range(3)]
    assert [w[1] for w in written] == ["0", "1", "2"], written
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    store = ShardedVectors.open(tmp_path, "docs", {"test": 1}, len(W.texts()), W.VOCAB, 2)
    assert store.num_shards == 7 and store.missing() == [3, 4, 5, 6]
    assert not [p for p in store.path.iterdir() if p.name.endswith(".tmp")]
    before = {i: store.shard_path(i).stat().st_mtime_ns for i in range(3)}
    assert encode_to_store(W.tiny_encoder(), W.WordTokenizer(), W.texts(), store, 32, batch_size=4) == [3, 4, 5, 6]
    assert {i: store.shard_path(i).stat().st_mtime_ns for i in range(3)} == before  # not re-encoded
    expected = encode(W.tiny_encoder(), W.WordTokenizer(), W.texts(), 32, batch_size=4)
    assert abs(store.matrix() - expected).max() <= 1e-6 and expected.nnz > 0
    assert encode_to_store(W.tiny_encoder(), W.WordTokenizer(), W.texts(), store, 32) == []  # all there
