"""The command line: ``python -m splade_exp [+experiment=NAME] [-m] [group=choice ...]``."""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from splade_exp.resolvers import register_resolvers  # re-exported: callers that compose configs use it

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

register_resolvers()


def _multirun_flag_first(argv: list[str]) -> list[str]:
    """Let ``-m`` stand anywhere: ``... +experiment=x -m backbone=y`` works like ``-m ... backbone=y``
    (argparse cannot take positional overrides on both sides of a flag)."""
    flags = [a for a in argv[1:] if a in ("-m", "--multirun")]
    return argv[:1] + flags + [a for a in argv[1:] if a not in ("-m", "--multirun")]


CFG_FLAGS = ("--cfg", "-c")
#: Hydra flags this printing does not follow (another config, one package): left to Hydra.
OTHER_CONFIG_FLAGS = ("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-p", "--package")


def show_sweep_configs(args: list[str]) -> bool:
    """``-m --cfg job|all|hydra [--resolve]``: print the config of every job of the sweep.

    Hydra refuses ``--cfg`` together with ``-m``, and without ``-m`` it prints one config before
    the sweep's own grid (``hydra.sweeper.params``) is applied -- not what any job runs: the three
    jobs of ``+experiment=vocab_ablation`` differ in their vocabulary, head, loss and top-k. Here
    the jobs are expanded as the sweeper and the preflight expand them (the grid, then the command
    line's comma lists) and each is printed under a comment naming its overrides; ``hydra`` prints
    the sweep's hydra config once. Returns False (nothing printed) unless both flags are given, or
    with a flag that selects another config (``OTHER_CONFIG_FLAGS``).
    """
    if not any(a in ("-m", "--multirun") for a in args) or any(a.split("=")[0] in OTHER_CONFIG_FLAGS for a in args):
        return False
    what, rest, i = None, [], 0
    while i < len(args):
        a = args[i]
        if a in CFG_FLAGS and i + 1 < len(args):
            what, i = args[i + 1], i + 2
            continue
        if a.startswith("--cfg="):
            what = a.split("=", 1)[1]
        elif not a.startswith("-"):
            rest.append(a)
        i += 1
    if what is None:
        return False
    if what not in ("job", "hydra", "all"):
        raise SystemExit(f"--cfg takes job, hydra or all, got {what!r}")
    resolve = "--resolve" in args
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import open_dict

    from splade_exp.checks import sweep_jobs

    # the grid is read from a config composed without the command line's own comma lists
    plain = [o.input_line for o in OverridesParser.create().parse_overrides(rest) if not o.is_sweep_override()]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3", job_name="splade_exp"):
        base = compose(config_name="config", overrides=plain, return_hydra_config=True)
        if what == "hydra":
            print(OmegaConf.to_yaml({"hydra": base.hydra}, resolve=resolve))
            return True
        jobs = sweep_jobs(base, rest)
        for n, job in enumerate(jobs):
            cfg = compose(config_name="config", overrides=job, return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)  # ${hydra:...} (launcher profiles) resolve as in a job
            if what == "job":
                with open_dict(cfg):
                    del cfg["hydra"]
            print(f"# job {n} of {len(jobs)}: {' '.join(job)}")
            print(OmegaConf.to_yaml(cfg, resolve=resolve))
    return True


def main() -> None:
    import sys

    sys.argv = _multirun_flag_first(sys.argv)
    if show_sweep_configs(sys.argv[1:]):
        return
    _hydra_main()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from splade_exp.run import run

    frame = run(cfg)
    if len(frame) and "mrr@10" in frame:
        return float(frame["mrr@10"].iloc[0])
    return None
