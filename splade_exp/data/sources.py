"""Where a collection comes from: one ``_target_`` per ``conf/data/*.yaml`` file.

A source is built from its config (cheap: the constructor checks that the files exist and the
options make sense, so a whole sweep can be checked before any job starts) and ``load()``\\ s a
:class:`~splade_exp.data.collection.Collection`. Every source ends in the same in-memory
collection, so nothing downstream knows where the data came from.

| ``data=`` | source | reads |
|---|---|---|
| ``synthetic`` | :class:`Synthetic` | the embedded generator, written once as a BEIR directory |
| ``beir`` | :class:`Beir` | a BEIR directory (``data.path``) |
| ``msmarco`` | :class:`splade_exp.data.msmarco.MsMarco` | MS MARCO passage TSVs, qrels, triples |
| ``hf`` | :class:`splade_exp.data.hf.HfFiles` | local json/jsonl/parquet/csv files via ``datasets`` |
| ``clicklog`` | :class:`splade_exp.data.clicklog.ClickLog` | a BEIR directory + a click log as training pairs |

A source also lists what it reads, ``files()`` (role -> path), and names its constructor options
that are paths, ``PATH_OPTIONS``: run ids and artifact keys hold the content of those files, not
their names (:mod:`splade_exp.data.identity`).

:func:`load_collection` is what the pipeline calls: it applies the options every source shares
(``data.drop_unknown_qrels``, ``data.drop_empty``, ``data.general_corpus``, the teacher scores of
``data.distillation`` / ``data.teacher_scores``: :mod:`splade_exp.data.distillation`) and checks that the
evaluation split (and, when training, the training pairs) exist before any model is built.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from splade_exp.data.collection import Collection, DataError, check_readable, load_beir
from splade_exp.hashing import config_hash
from splade_exp.io import build_once

log = logging.getLogger(__name__)


def data_dir(path, key: str = "data.path") -> Path:
    """``path`` as an existing directory, or a DataError naming ``key``."""
    if not path or str(path) == "???":
        raise DataError(f"{key} is not set; pass {key}=<a directory>")
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise DataError(f"{p}: {key} does not exist; check the path (relative paths are taken from the "
                        f"working directory {Path.cwd()})")
    if not p.is_dir():
        raise DataError(f"{p}: {key} is not a directory")
    if not os.access(p, os.R_OK | os.X_OK):
        raise DataError(f"{p}: {key} is not readable; check its permissions")
    return p


class Synthetic:
    """The embedded synthetic collection, generated once per distinct generator config."""

    PATH_OPTIONS = ()

    def __init__(self, cache_dir: str | os.PathLike, version: int | None = None, **generator_kwargs) -> None:
        import inspect

        from splade_exp.data import synthetic as gen

        if version is not None and version != gen.VERSION:
            raise DataError(f"data.source.version={version}, but this code generates version {gen.VERSION} of the "
                            f"synthetic collection; set data.source.version={gen.VERSION} (the collection, "
                            "and every result on it, changes)")
        params = inspect.signature(gen.generate).parameters
        unknown = sorted(set(generator_kwargs) - set(params) - {"out_dir"})
        if unknown:
            raise DataError(f"data.source: {unknown} are not options of the synthetic generator; valid: "
                            f"{sorted(k for k in params if k != 'out_dir')}")
        full = {k: v.default for k, v in params.items() if k != "out_dir"}
        full.update(generator_kwargs)
        try:
            gen._validate(full)
        except (TypeError, ValueError) as err:
            raise DataError(f"data.source.{err}") from None
        key = {**generator_kwargs, "version": gen.VERSION}
        self.out = Path(cache_dir) / "data" / f"synthetic-{config_hash(key)}"
        self.kwargs = generator_kwargs

    def files(self) -> dict[str, Path]:
        """None: the generated files follow from the options, which are the data's identity."""
        return {}

    def load(self, drop_unknown_qrels: bool = False, drop_empty: bool = False) -> Collection:
        from splade_exp.data import synthetic as gen

        build_once(self.out, lambda tmp: _generate_into(gen, tmp, self.kwargs))
        return load_beir(self.out, None, drop_unknown_qrels, drop_empty)


def _generate_into(gen, tmp: Path, kwargs: dict) -> None:
    tmp.rmdir()  # the generator creates its own directory
    gen.generate(tmp, **kwargs)


class Beir:
    """A BEIR-layout directory on disk: ``data=beir data.path=/path/to/scifact``."""

    #: constructor options that name files or directories: their content enters keys, not their names
    PATH_OPTIONS = ("path",)

    def __init__(self, path: str | None = None, cache_dir: str | os.PathLike | None = None) -> None:
        self.path = data_dir(path)
        for name in ("corpus.jsonl", "queries.jsonl"):
            check_readable(self.path / name, f"BEIR {name}", "data.path (a BEIR directory: corpus.jsonl, "
                                                            "queries.jsonl, qrels/<split>.tsv)")

    def files(self) -> dict[str, Path]:
        """role -> file of everything :meth:`load` reads (see :mod:`splade_exp.data.identity`)."""
        return beir_files(self.path)

    def load(self, drop_unknown_qrels: bool = False, drop_empty: bool = False) -> Collection:
        return load_beir(self.path, None, drop_unknown_qrels, drop_empty)


def beir_files(path: Path) -> dict[str, Path]:
    files = {"corpus": path / "corpus.jsonl", "queries": path / "queries.jsonl"}
    qdir = path / "qrels"
    files.update({f"qrels/{f.stem}": f for f in sorted(qdir.glob("*.tsv"))} if qdir.is_dir() else {})
    if (path / "general.txt").exists():
        files["general"] = path / "general.txt"
    return files


def make_source(data, cache_dir):
    """The configured source object (``data.source`` instantiated): cheap checks only."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(data.source, cache_dir=str(cache_dir), _convert_="all")
    except InstantiationException as err:  # show the source's own message, not Hydra's wrapper
        if isinstance(err.__cause__, (DataError, TypeError)):
            raise err.__cause__ from None
        raise


def load_collection(data, cache_dir, stage: str = "train") -> Collection:
    """Load ``data`` (the ``data`` config group) into a Collection and check it can serve ``stage``."""
    source = make_source(data, cache_dir)
    opts = {"drop_unknown_qrels": bool(data.get("drop_unknown_qrels", False)),
            "drop_empty": bool(data.get("drop_empty", False))}
    loaded = source.load(**opts) if hasattr(source, "load") else source
    collection = loaded if isinstance(loaded, Collection) else load_beir(loaded, None, **opts)
    general = data.get("general_corpus")
    if general:
        from splade_exp.data.collection import set_general_corpus

        if collection.general_path is not None and collection.general_path in collection.files:
            collection.files.remove(collection.general_path)
        set_general_corpus(collection, general)
    if stage == "train" and (data.get("distillation") or data.get("teacher_scores")):
        from splade_exp.data.distillation import add_teacher

        add_teacher(collection, data)
    if data.get("exclude_eval_docs"):
        exclude_eval_docs(collection, data.eval_split)
    collection.options = {**opts, "exclude_eval_docs": data.eval_split if data.get("exclude_eval_docs") else None}
    check_usable(collection, data.eval_split, stage)
    return collection


def exclude_eval_docs(collection: Collection, eval_split: str) -> int:
    """Remove training pairs whose document is judged relevant in ``eval_split``.

    A model fine-tuned on such pairs can score the evaluation by remembering documents (SciFact:
    196 of 300 test claims have a relevant abstract that is a training positive). Returns the
    number of removed pairs (logged)."""
    judged = {d for docs in collection.split(eval_split).values() for d, rel in docs.items() if rel > 0}
    train = collection.qrels.get("train", {})
    removed = 0
    for qid in list(train):
        for did in [d for d in train[qid] if d in judged]:
            del train[qid][did]
            removed += 1
        if not train[qid]:
            del train[qid]
    log.warning("data.exclude_eval_docs=true: removed %d training pairs whose document is judged in %r; "
                "%d pairs remain", removed, eval_split, sum(len(d) for d in train.values()))
    return removed


def check_usable(collection: Collection, eval_split: str, stage: str) -> None:
    """The evaluation split has judged queries; a training run has training pairs."""
    qrels = collection.split(eval_split)
    if not any(rel > 0 for docs in qrels.values() for rel in docs.values()):
        raise DataError(f"{collection.qrels_files.get(eval_split, collection.path)}: split {eval_split!r} has no "
                        "positive judgment to evaluate on; check data.eval_split")
    if stage == "train":
        if "train" not in collection.qrels:
            raise DataError(f"{collection.path}: no training pairs (no 'train' qrels, triples or clicks); add them, "
                            f"or evaluate without training (stage=evaluate); splits: {sorted(collection.qrels)}")
        if not collection.train_pairs():
            raise DataError(f"{collection.qrels_files.get('train', collection.path)}: the train split has no positive "
                            "pair to train on")
