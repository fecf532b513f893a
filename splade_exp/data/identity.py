"""The data part of every key: a source's options plus the content of every file it reads.

Run ids, the BM25 key and the artifact keys (built backbone, unigram vocabulary, EMLM
checkpoint, tokens) describe their data with :func:`data_identity`, never with the data config
alone: editing a corpus, a qrels file or a click log changes them, so no result or artifact
outlives the files it was computed from. Paths do not enter: a source's path options (``data.path``,
``data.source.collection``, ...) are replaced by the fingerprints of the files they name, under
the role each file plays (``corpus``, ``queries``, ``qrels/<split>``, ``triples``, ``clicks``,
``general``). The same files reached as ``~/d``, ``/home/u/d/``, ``/home/u/x/../d`` or a copy
elsewhere are the same data; see :mod:`splade_exp.fingerprint`.

The synthetic source reads no file: its generator options are its identity.

Artifacts that read only texts (the built backbone, unigram vocabularies, EMLM pretraining) are
keyed on :data:`TEXT_ROLES` alone, so correcting a qrels file does not retrain a backbone.
"""
from __future__ import annotations

import os
from pathlib import Path

from splade_exp.fingerprint import fingerprint, normalise_path

#: Inputs that text-only artifacts read: the documents and the general corpus.
TEXT_ROLES = ("corpus", "general")
#: Loading options that change the texts of the collection (see ``sources.load_collection``).
TEXT_OPTIONS = ("drop_empty",)


def source_files(data, cache_dir) -> dict[str, "os.PathLike"]:
    """role -> path of every file the configured source reads, ``data.general_corpus`` included."""
    from splade_exp.data.sources import make_source

    source = make_source(data, cache_dir)
    files = dict(source.files()) if hasattr(source, "files") else {}
    general = data.get("general_corpus")
    if general:
        files["general"] = normalise_path(general)
    # distillation files, relative to the source's directory (a synthetic source generates its
    # own, so its options already say what they hold)
    base = getattr(source, "path", None)
    for key in ("distillation", "teacher_scores"):
        name = data.get(key)
        if name and (base is not None or os.path.isabs(os.path.expanduser(str(name)))):
            path = Path(os.path.expanduser(str(name)))
            files[key] = normalise_path(path if path.is_absolute() else Path(base) / path)
    return files


def source_options(data) -> dict:
    """``data.source`` without its path options (and without ``cache_dir``, a place, not data)."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    options = OmegaConf.to_container(data.source, resolve=True)
    cls = get_class(options["_target_"])
    for key in (*getattr(cls, "PATH_OPTIONS", ()), "cache_dir"):
        options.pop(key, None)
    return options


def data_inputs(data, cache_dir) -> dict[str, dict]:
    """role -> ``{"path", "size", "xxh3"}``: what the log shows when inputs change."""
    cache = None if cache_dir is None else os.path.join(str(cache_dir), "fingerprints")
    return {role: {"path": str(path), **fingerprint(path, cache)} for role, path in source_files(data, cache_dir).items()}


def data_identity(data, cache_dir, roles: tuple[str, ...] | None = None) -> dict:
    """Source options + content of its inputs (only ``roles``' when given, e.g. :data:`TEXT_ROLES`)."""
    inputs = {role: {"size": fp["size"], "xxh3": fp["xxh3"]} for role, fp in data_inputs(data, cache_dir).items()
              if roles is None or role in roles}
    options = {k: bool(data.get(k, False)) for k in TEXT_OPTIONS}
    return {"source": source_options(data), "inputs": inputs, "options": options}
