"""W&B tracking, offline: what a sweep writes into each job's offline run, one run per job, and
that no API key ends up on disk. The offline run file (``run-<id>.wandb``) is read record by
record with wandb's own protobuf schema."""
from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import compose_cfg
from smoke_cli import launch, shared_artifacts, tail
from splade_exp import tracking
from splade_exp.results import read_results
from splade_exp.run import run

SECRET = "0123456789abcdef-fake-wandb-key-fedcba9876543210"


def wandb_records(path: Path):
    """Records of an offline ``.wandb`` file: a 7-byte header, then LevelDB-log framed protobufs
    (32 KiB blocks; 7-byte chunk headers: crc32, length, type 1=full 2=first 3=middle 4=last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), "not a W&B transaction log"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        room = 32768 - pos % 32768
        if room < 7:  # block trailer
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero padding up to the next block
            pos += room
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def exit_records(path: Path, timeout: float = 20.0) -> list:
    """The ``exit`` records of an offline run file. ``wandb.finish()`` returns once the run is
    closed, but the W&B service process may append the last records to the file a moment later:
    wait for them (up to ``timeout`` seconds) before reading."""
    deadline = time.monotonic() + timeout
    while True:
        exits = [r.exit for r in wandb_records(path) if r.WhichOneof("record_type") == "exit"]
        if exits or time.monotonic() > deadline:
            return exits
        time.sleep(0.2)


def _items(records, kind: str) -> dict:
    """Merged key -> JSON value of all ``history``/``summary`` records (nested keys joined by '/')."""
    out = {}
    for r in records:
        if r.WhichOneof("record_type") != kind:
            continue
        for item in (r.history.item if kind == "history" else r.summary.update):
            key = "/".join(item.nested_key) if item.nested_key else item.key
            out.setdefault(key, []).append(json.loads(item.value_json))
    return out


def test_offline_unless_a_key_is_available(monkeypatch, tmp_path):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    assert tracking.wandb_offline()  # no key anywhere
    assert compose_cfg(["logger=wandb"]).logger.offline is True
    netrc.write_text("machine api.wandb.ai\n  login user\n  password not-a-real-key\n")
    netrc.chmod(0o600)
    assert not tracking.wandb_offline()  # `wandb login` wrote ~/.netrc
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert tracking.wandb_offline()  # an explicit mode wins
    monkeypatch.setenv("WANDB_MODE", "online")
    netrc.unlink()
    assert not tracking.wandb_offline()
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    assert not tracking.wandb_offline()


def test_logger_config_is_the_run_identity(tmp_path):
    cfg = compose_cfg(["+experiment=smoke", "logger=wandb"], tmp_path)
    assert cfg.logger._target_ == "lightning.pytorch.loggers.WandbLogger"
    assert (cfg.logger.group, cfg.logger.job_type) == ("smoke", "train")
    assert "id" not in cfg.logger  # tracking.make_logger passes the run id
    assert not any(SECRET in str(v) for v in cfg.logger.values())


def test_summary_metrics_per_grid_point():
    frame = pd.DataFrame({"qk": [0, 5], "dk": [0, 10], "mrr@10": [0.5, 0.25], "flops": [12.0, 3.0],
                          "recall@10": [0.75, float("nan")]})
    got = tracking.summary_metrics(frame)
    assert got == {"eval/mrr@10/q0_d0": 0.5, "eval/mrr@10": 0.5, "eval/recall@10/q0_d0": 0.75,
                   "eval/recall@10": 0.75, "eval/flops/q0_d0": 12.0, "eval/flops": 12.0,
                   "eval/mrr@10/q5_d10": 0.25, "eval/flops/q5_d10": 3.0}


@pytest.mark.slow
def test_sweep_logs_one_offline_run_per_job_and_no_secret(tmp_path, tmp_path_factory):
    root, log = tmp_path / "root", tmp_path / "sweep.log"
    args = ["+experiment=smoke", "logger=wandb", "trainer.log_every_n_steps=2", "-m", "trainer.max_steps=6,8"]
    job = launch(args, root, shared_artifacts(tmp_path_factory), log, WANDB_API_KEY=SECRET)
    assert job.wait(300) == 0, tail(log)

    results = {f.stem: read_results(f) for f in (root / "results" / "smoke").glob("*.parquet")
               if not f.name.startswith("bm25-") and not f.name.endswith(".perquery.parquet")}
    assert len(results) == 2
    for rid, frame in results.items():
        runs = list((root / "runs" / rid / "wandb").glob(f"offline-run-*-{rid}"))
        assert len(runs) == 1, runs  # its own run, id = run id
        records = list(wandb_records(runs[0] / f"run-{rid}.wandb"))
        kinds = [r.WhichOneof("record_type") for r in records]
        header = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        assert (header.run_id, header.run_group, header.job_type) == (rid, "smoke", "train")
        (config,) = [r.config for r in records if r.WhichOneof("record_type") == "config"]  # logged once
        config = {u.key: json.loads(u.value_json) for u in config.update}
        max_steps = int(frame["cfg.trainer.max_steps"].iloc[0])
        assert config["run_id"] == rid and config["trainer"]["max_steps"] == max_steps
        assert config["loss"]["name"] == "flops" and "lr" not in config  # no module-hparams copy
        assert config["loss"]["regularizers"]["flops"]["_target_"] == "splade_exp.regularizers.FlopsPerSide"
        assert kinds[-1] == "exit"  # wandb.finish() ran

        history, summary = _items(records, "history"), _items(records, "summary")
        assert len(history["train/loss"]) >= 1 and max(history["trainer/global_step"]) == max_steps
        unpruned = frame[(frame.qk == 0) & (frame.dk == 0)].iloc[0]
        assert summary["eval/mrr@10"][-1] == pytest.approx(unpruned["mrr@10"])
        assert summary["eval/flops/q5_d10"][-1] == pytest.approx(frame[(frame.qk == 5) & (frame.dk == 10)].flops.iloc[0])
        table = json.loads(next(runs[0].glob("files/media/table/eval/pruning_grid_*.table.json")).read_text())
        grid = pd.DataFrame(table["data"], columns=table["columns"]).set_index(["qk", "dk"])
        pd.testing.assert_series_equal(grid["mrr@10"], frame.set_index(["qk", "dk"])["mrr@10"], check_names=False)

    leaks = [p for p in [*root.rglob("*"), log] if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaks, f"the API key was written to {leaks}"
    assert list((root / "multirun").rglob("config.yaml")), "expected the sweep's .hydra dirs under the root"


def test_failed_job_finishes_its_run(tmp_path, monkeypatch):
    import splade_exp.run as run_module

    def fail(cfg):
        raise OSError("disk full")  # any error after the W&B run has started

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(run_module, "load_collection", fail)
    with pytest.raises(OSError, match="disk full"):
        run(compose_cfg(["+experiment=smoke", "logger=wandb"], tmp_path))
    assert sys.modules["wandb"].run is None  # the next job of the sweep starts its own run
    (wandb_file,) = (tmp_path / "runs").rglob("run-*.wandb")
    assert [e.exit_code for e in exit_records(wandb_file)] == [1]


def test_an_unreachable_wandb_server_logs_offline_with_a_warning(tmp_path, monkeypatch, caplog):
    """Online (a key is set) but the server cannot be reached: the run logs offline at once and says
    how to upload later, instead of failing after wandb's retries."""
    import logging
    import socket

    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    cfg = compose_cfg(["+experiment=smoke", "logger=wandb"], tmp_path)
    assert cfg.logger.offline is False
    with caplog.at_level(logging.WARNING):
        logger = tracking.make_logger(cfg, "rid123", tmp_path / "run")
    assert logger._offline is True
    assert f"http://127.0.0.1:{port} cannot be reached (ConnectionRefusedError" in caplog.text
    assert f"wandb sync {tmp_path / 'run'}/wandb/offline-run-*" in caplog.text
    assert SECRET not in caplog.text
    with socket.socket() as server:  # reachable: stays online
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert tracking.unreachable(f"http://127.0.0.1:{server.getsockname()[1]}") is None
