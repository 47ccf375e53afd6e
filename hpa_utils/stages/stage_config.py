"""One stage's configuration as one typed record: the parameters its notebook declares, read once, and the model
it trained, saved as ``config.json`` beside its weights so that the next stage rebuilds that model from it
(``read_model``).

The defaults live in one place, the notebooks' parameters cells (read with papermill's ``inspect_notebook``);
``StageConfig.from_values`` fills what a run did not set from them, and refuses a name the notebook does not declare
or a value of the wrong type. A name a stage does not declare is None in its record.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hpa_utils import errors, stages
from hpa_utils.stages import parameters
from hpa_utils.system import atomic_files


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Every parameter a notebook can declare, by its name in lower case (``IMAGE_SIZE`` -> ``image_size``)."""

    stage: str
    # the method
    backbone: str | None = None
    channels: str | None = None
    weights: str | None = None
    freeze_batch_norm: str | None = None
    image_size: int | None = None
    batch_size: int | None = None
    augment: str | None = None
    epochs: int | None = None
    warmup_epochs: int | None = None
    finetune_epochs: int | None = None
    learning_rate: float | None = None
    finetune_learning_rate: float | None = None
    loss: str | None = None
    dropout: float | None = None
    validation_fraction: float | None = None
    seed: int | None = None
    # 04's folds
    n_folds: int | None = None
    folds: list | None = None
    tta: int | None = None
    min_positives: int | None = None
    start_from: str | None = None
    fold_kernels: bool | None = None
    # 00's summaries
    montage_samples: int | None = None
    statistics_samples: int | None = None
    likeness_samples: int | None = None
    # the machine and the data
    data_dir: str | None = None
    output_dir: str | None = None
    upstream_dir: str | None = None
    external_dir: str | None = None
    cache: str | None = None
    mixed_precision: str | None = None
    time_limit_hours: float | None = None
    keras_backend: str | None = None
    synthetic_train: int | None = None
    synthetic_test: int | None = None
    synthetic_size: int | None = None
    synthetic_seed: int | None = None

    @classmethod
    def from_values(cls, stage: str, values: dict, *, source: str = "the notebook", notebooks_dir=None):
        """``stage``'s record: ``values`` ({NAME: value}, e.g. a notebook's parameters after papermill injected a
        run's) over the notebook's own defaults. ValueError naming a name the notebook does not declare or a value
        whose type is not the declared one."""
        declared = parameters.declared(stage, notebooks_dir)
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise errors.InputError(
                f"{stage} does not declare {', '.join(unknown)} (declared: {', '.join(sorted(declared))})"
            )
        chosen = {}
        for name, (type_name, default) in declared.items():
            value = values.get(name, default)
            parameters.check_type(stage, name, type_name, value, source if name in values else "its default")
            chosen[name.lower()] = value
        return cls(stage=stages.check_stage(stage), **chosen)

    @classmethod
    def from_namespace(cls, stage: str, namespace: dict):
        """``stage``'s record from a notebook's namespace (``globals()`` after its parameters cell ran, with what
        papermill injected): every name of the record found there. Needs no copy of the notebook (a Kaggle kernel
        has none beside it)."""
        names = {field.name.upper() for field in dataclasses.fields(cls)} - {"STAGE"}
        return cls(
            stage=stages.check_stage(stage), **{name.lower(): namespace[name] for name in names & set(namespace)}
        )

    def values(self) -> dict:
        """{NAME: value} of the parameters the stage's notebook declares (the record's names that are set)."""
        return {
            field.name.upper(): getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name != "stage" and getattr(self, field.name) is not None
        }


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """How a stage's model was built, what the next stage needs to build it again and load its weights by name."""

    backbone: str
    image_size: int
    channels: str
    backbone_weights: str  # what the backbone started from: imagenet, none or a weights file
    dropout: float
    freeze_batch_norm: bool
    source_image_size: int | None = None  # the upscale adapter's: the image size the head was trained at
    weights: str = stages.WEIGHTS_FILE  # the stage's weights file, in its folder

    @classmethod
    def from_details(cls, details: dict) -> ModelRecord | None:
        """The record from a stage's saved details (``run.save``'s keywords); None when they name no backbone (00, a
        fold of 04). InputError naming what is missing when they name one but not all it was built with: the next
        stage rebuilds the model from this record, so nothing in it is guessed."""
        if "backbone" not in details:
            return None
        fields = dataclasses.fields(cls)
        required = [field.name for field in fields if field.default is dataclasses.MISSING]
        missing = [name for name in required if name not in details]
        if missing:
            raise errors.InputError(f"the stage's model is saved without {', '.join(missing)}: pass them to run.save")
        return cls(**{field.name: details[field.name] for field in fields if field.name in details})


def save(stage_dir, config: StageConfig | None, model: ModelRecord | None) -> Path | None:
    """Write ``config.json`` into ``stage_dir``: the stage's parameters (when a notebook ran it) and, when it trained
    one, how its model was built; nothing when there is neither (a fold of 04: its stage's config.json says it)."""
    if config is None and model is None:
        return None
    path = Path(stage_dir) / stages.CONFIG_FILE
    record = {"stage": config.stage if config else None, "parameters": config.values() if config else {}}
    if model is not None:
        record["model"] = dataclasses.asdict(model)
    atomic_files.write_json(path, record)
    return path


def read_model(stage_dir) -> ModelRecord:
    """How a finished stage's model was built, from its ``config.json``; FileNotFoundError naming the file when it is
    not there, ValueError when the stage saved no model."""
    path = Path(stage_dir) / stages.CONFIG_FILE
    if not path.is_file():
        raise errors.MissingError(
            f"{path}: not found (a stage writes it when it saves its model; run that stage again)"
        )
    record = json.loads(path.read_text())
    if "model" not in record:
        raise errors.InputError(f"{path}: the stage saved no model")
    return ModelRecord(**record["model"])
