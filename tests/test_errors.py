"""One base for the project's errors, beside the built-in type each always had."""
import pytest

from conftest import compose_cfg
from splade_exp.checkpoint import CheckpointError
from splade_exp.checks import ConfigError, check_config
from splade_exp.data.collection import DataError
from splade_exp.errors import SpladeExpError
from splade_exp.export.model_dir import ModelDirError
from splade_exp.export.publish import ExportError
from splade_exp.io import DiskFullError
from splade_exp.models.backbone import BackboneError
from splade_exp.stages.pretrain import EmlmMissing


@pytest.mark.parametrize("cls,builtin", [
    (ConfigError, ValueError), (DataError, ValueError), (BackboneError, ValueError), (ModelDirError, ValueError),
    (ExportError, ValueError), (CheckpointError, RuntimeError), (EmlmMissing, RuntimeError), (DiskFullError, OSError)])
def test_every_project_error_is_a_splade_exp_error_and_keeps_its_builtin_type(cls, builtin):
    assert issubclass(cls, SpladeExpError) and issubclass(cls, builtin)


def test_a_bad_value_and_a_missing_file_are_caught_by_the_one_base(tmp_path):
    with pytest.raises(SpladeExpError, match="prune.grid"):
        check_config(compose_cfg(["prune.grid=[[5]]"], tmp_path))
    with pytest.raises(SpladeExpError, match="nowhere"):
        check_config(compose_cfg(["data=beir", f"data.path={tmp_path / 'nowhere'}"], tmp_path))
