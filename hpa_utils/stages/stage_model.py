"""A stage's model in its folder: the weights, history and config.json saved with its metrics.json, and a finished
stage's model rebuilt from them (04's folds start so)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hpa_utils import models, stages
from hpa_utils.stages import stage_config, stage_files
from hpa_utils.system import atomic_files


def save_stage(stage_dir, model, history: pd.DataFrame, *, scores: dict, config=None, **details) -> dict:
    """Write the stage's weights (legacy .h5, loaded by name by the next stage), history.csv, config.json (its
    parameters, ``config``, and how its model was built, from ``details``) and, last, metrics.json (``scores``, the
    epochs, ``details``); return the metrics."""
    stage_dir = Path(stage_dir)
    built = stage_config.ModelRecord.from_details(details)  # before anything is written: InputError if incomplete
    models.save_weights(model, stage_dir / stages.WEIGHTS_FILE)
    with atomic_files.atomic_write(stage_dir / stages.HISTORY_FILE) as temporary:
        history.to_csv(temporary, index=False)
    stage_config.save(stage_dir, config, built)
    result = {**scores, "epochs": int(len(history)), **details, "weights": stages.WEIGHTS_FILE}
    stage_files.write_metrics(stage_dir, result)
    return result


def model_from_stage(stage_path, image_size: int | None = None, *, freeze_batch_norm: bool | None = None):
    """Rebuild a finished stage's model and load its weights; at a larger image_size, the upscale model.

    The architecture (backbone, channels, sizes, dropout) comes from the stage's config.json, and so does its
    BatchNormalization choice unless ``freeze_batch_norm`` is given. At another image_size an ``upscale_adapter``
    is inserted (as notebook 03 shows) and every other layer loads by name.
    """
    stage_path = Path(stage_path)
    built = stage_config.read_model(stage_path)
    image_size = image_size or built.image_size
    adapter_from = built.source_image_size if image_size == built.image_size else built.image_size
    model = models.build_model(
        built.backbone,
        image_size,
        built.channels,
        weights="none",
        dropout=built.dropout,
        adapter=models.upscale_adapter(built.backbone, adapter_from, image_size) if adapter_from else None,
        freeze_batch_norm=built.freeze_batch_norm if freeze_batch_norm is None else freeze_batch_norm,
    )
    matched = models.transfer_weights(model, stage_path / built.weights)
    print(f"loaded {len(matched)} layers by name from {stage_path.name}")
    return model
