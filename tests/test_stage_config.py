"""One stage configuration: a typed record of every parameter a notebook declares, its defaults the notebooks' own,
saved as config.json beside a stage's weights and read back to rebuild the model."""

import dataclasses
import typing

import pandas as pd
import pytest

from hpa_utils import errors, stages
from hpa_utils.stages import parameters, stage_config, stage_model
from hpa_utils.stages.stage_config import ModelRecord, StageConfig

FIELDS = {field.name: field for field in dataclasses.fields(StageConfig)}
TYPES = typing.get_type_hints(StageConfig)


@pytest.mark.parametrize("stage", stages.STAGES)
def test_the_record_has_a_field_of_the_declared_type_for_every_parameter_of_every_notebook(stage):
    for name, (type_name, _) in parameters.declared(stage).items():
        assert name.lower() in FIELDS, f"{stage} declares {name}: StageConfig has no field {name.lower()}"
        assert type_name in str(TYPES[name.lower()]), (stage, name, type_name, TYPES[name.lower()])
    config = StageConfig.from_values(stage, {})
    assert config.values() == {name: default for name, (_, default) in parameters.declared(stage).items()}


def test_every_notebook_generates_the_same_embedded_dataset_by_default():
    for stage in stages.STAGES:
        declared = parameters.declared(stage)
        assert {name: declared[name][1] for name in stages.SYNTHETIC_DEFAULTS} == stages.SYNTHETIC_DEFAULTS, stage


def test_a_name_the_notebook_does_not_declare_or_a_wrong_type_is_refused():
    with pytest.raises(errors.InputError, match="03_upscale does not declare BACKBONE"):
        StageConfig.from_values("03_upscale", {"BACKBONE": "resnet50"})
    with pytest.raises(errors.InputError, match="IMAGE_SIZE"):
        StageConfig.from_values("02_warmup_finetune", {"IMAGE_SIZE": "64"})
    config = StageConfig.from_values("02_warmup_finetune", {"IMAGE_SIZE": 32})
    assert (config.image_size, config.n_folds, config.stage) == (32, None, "02_warmup_finetune")


def test_config_json_rebuilds_the_model_without_metrics_json(tmp_path):
    from hpa_utils import models

    stage = tmp_path / "02_warmup_finetune"
    stage.mkdir()
    config = StageConfig.from_values("02_warmup_finetune", {"BACKBONE": "small", "IMAGE_SIZE": 32, "DROPOUT": 0.3})
    model = models.build_model("small", 32, "rgby", dropout=0.3, freeze_batch_norm=True)
    details = dict(backbone="small", channels="rgby", image_size=32, dropout=0.3, freeze_batch_norm=True)
    with pytest.raises(errors.InputError, match="without backbone_weights"):  # nothing the next stage reads is guessed
        stage_model.save_stage(stage, model, pd.DataFrame({"epoch": [0]}), scores={}, config=config, **details)
    assert list(stage.iterdir()) == []  # refused before anything was written
    details["backbone_weights"] = "none"
    stage_model.save_stage(stage, model, pd.DataFrame({"epoch": [0]}), scores={}, config=config, **details)
    assert stage_config.read_model(stage) == ModelRecord("small", 32, "rgby", "none", 0.3, True)
    saved = (stage / stages.CONFIG_FILE).read_text()
    assert '"IMAGE_SIZE": 32' in saved and '"stage": "02_warmup_finetune"' in saved
    (stage / stages.METRICS_FILE).write_text("{}")  # what the model is comes from config.json alone
    rebuilt = stage_model.model_from_stage(stage, 64)
    assert rebuilt.input.shape == (None, 64, 64, 4) and rebuilt.get_layer("head_dropout_1").rate == 0.3
    (stage / stages.CONFIG_FILE).unlink()
    with pytest.raises(errors.MissingError, match="config.json"):
        stage_model.model_from_stage(stage)
