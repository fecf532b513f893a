"""Backbone builders: what a ``conf/backbone/`` choice is, named by the file's ``_target_``.

:func:`builder` makes the builder of a backbone config node (the whole node: an experiment file
may set keys that only another kind reads, e.g. ``+experiment=smoke``'s build sizes under
``backbone=local``). A builder answers three questions about its backbone:

- :meth:`Backbone.check`: its own config values, and the run's max lengths against its positions,
  without loading weights (:func:`splade_exp.checks.check_config`, so the sweep preflight too);
- :meth:`Backbone.key`: its identity, the one every artifact built on it is keyed by (the built
  backbone, the unigram vocabulary, the EMLM pretraining). Display keys (``name``) are not part
  of it, so two choices that make the same model share artifacts; a local directory enters by the
  content of its files, not its path;
- :meth:`Backbone.load`: ``(masked LM, tokenizer)``, built once per key or loaded.

Two kinds: :class:`Built` (a model built from config on the data: ``tiny``, ``*_shaped``) and
:class:`Pretrained` (``name_or_path``: a hub name or a local directory). Another kind is one
subclass (here or in any importable module) and one ``conf/backbone/`` file naming it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from omegaconf import OmegaConf

from splade_exp.checks import ConfigError

#: Part of the artifact keys of built backbones (and of what is built on them): bump it when the
#: same config builds a different backbone, so that no cache mixes the two.
#: 2: WordPiece vocabularies that do not depend on the process (train_wordpiece).
BUILD_VERSION = 2


def builder(bcfg) -> "Backbone":
    """The builder that ``bcfg._target_`` names, made from the backbone config node ``bcfg``."""
    from hydra.utils import get_class

    target = bcfg.get("_target_")
    if not target:
        raise ConfigError(f"backbone={bcfg.get('name')}: backbone._target_ is not set; a conf/backbone/ file names "
                          f"its builder, e.g. _target_: {Built.__module__}.Built (built from config) or "
                          f"{Pretrained.__module__}.Pretrained (backbone.name_or_path)")
    try:
        cls = get_class(target)
    except Exception as err:  # hydra wraps import errors in its own exception types
        raise ConfigError(f"backbone._target_={target}: cannot import it ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, Backbone)):
        raise ConfigError(f"backbone._target_={target} is not a {Backbone.__module__}.Backbone subclass")
    return cls(bcfg)


class Backbone:
    """A backbone choice (module doc). ``cfg``: its config node; ``kind``: its kind in the key."""

    kind = ""

    def __init__(self, cfg) -> None:
        self.cfg = cfg

    def check(self, lengths: dict) -> None:
        """Raise ConfigError for a value of this backbone's config that cannot work, or a max length
        of ``lengths`` (dotted key -> tokens the run tokenises with) beyond its positions."""
        raise NotImplementedError

    def key(self, seed: int, data_key: dict, fingerprints: Path) -> dict:
        """The backbone's identity in artifact keys (module doc). ``data_key``: the data part of the
        run's artifact keys (:func:`splade_exp.vocab.unigram.data_key`); ``fingerprints``: the cache
        of file fingerprints (:mod:`splade_exp.fingerprint`)."""
        raise NotImplementedError

    def load(self, collection, trainer, artifacts_dir, seed: int, data_key: dict, lengths: dict):
        """``(masked LM, tokenizer)``; ``trainer``: the run's trainer config (a build's devices)."""
        raise NotImplementedError


class Built(Backbone):
    """A masked LM built from config on the data: a WordPiece tokenizer trained on the collection and
    its general corpus, a randomly initialised model (``model_type``, default ``bert``, sized by
    ``config``), an optional whole-word MLM warm-up (``mlm``); built once per :meth:`key` into
    ``artifacts/backbone/built-<hash>`` (:func:`splade_exp.stages.backbone_mlm.build_tiny_backbone`)."""

    kind = "built"

    def spec(self) -> dict:
        """What the build uses of the config."""
        b = self.cfg
        return {"model_type": b.get("model_type", "bert"),
                **{k: OmegaConf.to_container(b[k], resolve=True) if b.get(k) is not None else None
                   for k in ("tokenizer", "config", "mlm")}}

    def position_limit(self) -> int:
        """``config.max_position_embeddings`` (transformers' configs default to 512)."""
        from splade_exp.checks import position_limit

        spec = self.spec()
        config = {"max_position_embeddings": 512, "model_type": spec["model_type"], **(spec["config"] or {})}
        return position_limit(config)

    def check(self, lengths: dict) -> None:
        from splade_exp.checks import non_negative_int, positive_int, check_lengths

        b = self.cfg
        if b.get("name_or_path"):
            raise ConfigError(f"backbone={b.get('name')} builds its model from config, so backbone.name_or_path="
                              f"{b.name_or_path} would be ignored; to load that model use backbone=local "
                              f"backbone.name_or_path={b.name_or_path} (or a hub backbone)")
        for key in ("tokenizer", "config", "mlm"):
            if b.get(key) is None:
                raise ConfigError(f"backbone.{key} is required to build backbone={b.get('name')}")
        positive_int(b.tokenizer.get("vocab_size"), "backbone.tokenizer.vocab_size")
        non_negative_int(b.mlm.get("steps"), "backbone.mlm.steps")
        positive_int(b.mlm.get("batch_size"), "backbone.mlm.batch_size")
        check_lengths({**lengths, "backbone.mlm.max_length": b.mlm.get("max_length")}, self.position_limit(),
                      "backbone.config.max_position_embeddings")

    def key(self, seed: int, data_key: dict, fingerprints: Path) -> dict:
        return {"backbone": {"kind": self.kind, **self.spec()}, "seed": int(seed), "build": BUILD_VERSION,
                "data": data_key}

    def load(self, collection, trainer, artifacts_dir, seed: int, data_key: dict, lengths: dict):
        from splade_exp import artifacts
        from splade_exp.models.backbone import load_masked_lm
        from splade_exp.stages.backbone_mlm import build_tiny_backbone

        key = self.key(seed, data_key, Path(str(artifacts_dir)) / "fingerprints")
        spec = OmegaConf.create(self.spec())
        path = artifacts.artifact(artifacts_dir, "backbone", "built", key,
                                  lambda out: build_tiny_backbone(out, spec, trainer, collection, seed))
        return load_masked_lm(str(path))


class Pretrained(Backbone):
    """A saved masked LM: ``name_or_path`` is a hub name or a directory written by ``save_pretrained``
    (a model directory of an earlier run included: :mod:`splade_exp.export.model_dir`)."""

    kind = "pretrained"

    def name_or_path(self) -> str:
        name = self.cfg.get("name_or_path")
        if not name:
            raise ConfigError(f"backbone={self.cfg.get('name')}: backbone.name_or_path must name a hub model or a "
                              "local directory written by save_pretrained")
        return str(name)

    def local(self) -> bool:
        from splade_exp.models.backbone import looks_local

        return looks_local(self.name_or_path())

    def check(self, lengths: dict) -> None:
        """A local directory must hold a model (config, weights, tokenizer); its ``config.json``
        bounds the lengths. A hub model's positions are known once it is loaded (:meth:`load`)."""
        from splade_exp.checks import check_lengths, position_limit
        from splade_exp.models.backbone import check_local_model

        name = self.name_or_path()
        limit, where = None, name
        if self.local():
            file = check_local_model(name) / "config.json"
            where = str(file)
            try:
                limit = position_limit(json.loads(file.read_text()))
            except (OSError, ValueError):
                pass  # an unreadable config.json: load_masked_lm says which file is damaged
        check_lengths(lengths, limit, where)

    def key(self, seed: int, data_key: dict, fingerprints: Path) -> dict:
        name = self.name_or_path()
        path = Path(os.path.expanduser(name))
        if self.local() and path.is_dir():
            from splade_exp.fingerprint import directory_fingerprint

            return {"backbone": {"kind": self.kind, "content": directory_fingerprint(path, fingerprints)}}
        return {"backbone": {"kind": self.kind, "name_or_path": name}}

    def load(self, collection, trainer, artifacts_dir, seed: int, data_key: dict, lengths: dict):
        from splade_exp.checks import check_lengths, position_limit
        from splade_exp.models.backbone import load_masked_lm

        name = self.name_or_path()
        mlm, tokenizer = load_masked_lm(name)
        check_lengths(lengths, position_limit(mlm.config.to_dict()), f"{name}: config.max_position_embeddings")
        return mlm, tokenizer
