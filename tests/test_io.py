"""Atomic writes give files and directories the permissions of a plain open()/mkdir()."""
from __future__ import annotations

import os
import stat

import pytest

from splade_exp.io import atomic_dir, write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_file_is_readable_by_the_group_under_umask_022(tmp_path, umask_022):
    path = write_text(tmp_path / "results" / "run.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == "x"


def test_atomic_dir_is_listable_by_the_group_under_umask_022(tmp_path, umask_022):
    target = tmp_path / "artifact"
    with atomic_dir(target) as tmp:
        (tmp / "f").write_text("y")
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert (target / "f").read_text() == "y"
