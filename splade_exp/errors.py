"""The one base of the project's own errors.

Every error the framework raises on purpose -- a config that cannot run (``ConfigError``), bad data
(``DataError``), a backbone it cannot load (``BackboneError``), a damaged checkpoint
(``CheckpointError``), a model directory or export it cannot use, a missing EMLM artifact, a full
disk -- derives from :class:`SpladeExpError`, beside the built-in type it always had
(``ValueError``, ``RuntimeError``, ``OSError``), so ``except SpladeExpError`` separates "the input
is wrong, the message says how" from a bug, and existing ``except ValueError`` code still works.
"""
from __future__ import annotations


class SpladeExpError(Exception):
    """Base of the errors whose message names the file, line or config key to fix."""
