"""A stage's model in its folder: the weights and history saved with its metrics.json, and a finished stage's
model rebuilt from them (04's folds start so)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hpa_utils import models, stages
from hpa_utils.stages import stage_files
from hpa_utils.system import atomic_files


def save_stage(stage_dir, model, history: pd.DataFrame, *, scores: dict, **details) -> dict:
    """Write the stage's weights (legacy .h5, loaded by name by the next stage), history.csv and, last,
    metrics.json (``scores``, the epochs, ``details``); return the metrics."""
    stage_dir = Path(stage_dir)
    models.save_weights(model, stage_dir / stages.WEIGHTS_FILE)
    with atomic_files.atomic_write(stage_dir / stages.HISTORY_FILE) as temporary:
        history.to_csv(temporary, index=False)
    result = {**scores, "epochs": int(len(history)), **details, "weights": stages.WEIGHTS_FILE}
    stage_files.write_metrics(stage_dir, result)
    return result


def upstream_batch_norm(info: dict) -> bool:
    """Whether a finished stage (its metrics.json) kept its backbone's BatchNormalization frozen; a stage written
    before FREEZE_BATCH_NORM existed froze it for pretrained weights."""
    return bool(info.get("freeze_batch_norm", models.is_pretrained(info.get("backbone_weights", "none"))))


def model_from_stage(stage_path, image_size: int | None = None, *, freeze_batch_norm: bool | None = None):
    """Rebuild a finished stage's model and load its weights; at a larger image_size, the upscale model.

    The architecture (backbone, channels, sizes, dropout) comes from the stage's metrics.json, and so does its
    BatchNormalization choice unless ``freeze_batch_norm`` is given. At another image_size an ``upscale_adapter``
    is inserted (as notebook 03 shows) and every other layer loads by name.
    """
    stage_path = Path(stage_path)
    info = stage_files.read_metrics(stage_path)
    source_size = info["image_size"]
    image_size = image_size or source_size
    adapter_from = info.get("source_image_size") if image_size == source_size else source_size
    model = models.build_model(
        info["backbone"],
        image_size,
        info["channels"],
        weights="none",
        dropout=info.get("dropout", 0.5),
        adapter=models.upscale_adapter(info["backbone"], adapter_from, image_size) if adapter_from else None,
        freeze_batch_norm=upstream_batch_norm(info) if freeze_batch_norm is None else freeze_batch_norm,
    )
    matched = models.transfer_weights(model, stage_path / info.get("weights", stages.WEIGHTS_FILE))
    print(f"loaded {len(matched)} layers by name from {stage_path.name}")
    return model
