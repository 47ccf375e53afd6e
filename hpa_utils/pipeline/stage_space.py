"""What a stage writes, estimated from its parameters alone (before TensorFlow starts), and the warnings a stage
prints before it starts when a folder is short of it.

A stage writes its weights twice (``model.h5`` for the next stage and the best epoch's checkpoint), its predictions
and its executed notebook into the run folder; the image cache goes to its own folder. ``benchmarks/outputs.py``
measures what ``stage_bytes`` estimates by writing it, and a test keeps the two together.
"""

from __future__ import annotations

from pathlib import Path

from hpa_utils.dataset import labels
from hpa_utils.system.disk import KAGGLE_WORKING_BYTES, describe, free_bytes

# backbone -> (weights without a top, output channels, input pixels per feature-grid cell)
BACKBONE_SIZES = {
    "resnet50": (23_587_712, 2048, 32),
    "inceptionv3": (21_802_784, 2048, 32),
    "densenet121": (7_037_504, 1024, 32),
    "efficientnet_lite0": (3_413_024, 1280, 32),
    "small": (1_175_136, 256, 16),
}
HEAD_FILTERS, DENSE_UNITS, CLASSES = 32, 1024, labels.NUM_CLASSES  # the head (models imports Keras: not here)
NOTEBOOK_BYTES = {"00_eda": 6_000_000}  # the executed notebook and its HTML copy (00's plots are the most)
DEFAULT_NOTEBOOK_BYTES = 1_000_000


def model_weights(values: dict, image_size: int | None = None) -> int:
    """About how many weights a stage's model has: the backbone's, and the head's at ``image_size``'s grid (the
    adapter keeps 03's and 04's head at the smaller stage's grid, a little smaller; this errs large)."""
    backbone, channels, stride = BACKBONE_SIZES.get(values.get("BACKBONE", "resnet50"), BACKBONE_SIZES["resnet50"])
    grid = max(1, int(image_size or values.get("IMAGE_SIZE", 224)) // stride)
    head = channels * HEAD_FILTERS + grid * grid * HEAD_FILTERS * DENSE_UNITS + DENSE_UNITS * CLASSES
    return backbone + head


def stage_bytes(stage: str, values: dict, *, train_images: int, test_images: int) -> int:
    """About how many bytes ``stage`` writes into the run folder, from its parameters ``values``."""
    notebook = NOTEBOOK_BYTES.get(stage, DEFAULT_NOTEBOOK_BYTES)
    if stage == "00_eda":
        return notebook
    weights = 2 * 4 * model_weights(values)  # model.h5 and the best epoch's checkpoint, float32
    predictions = train_images * CLASSES * 4 * 2  # predictions.npz (validation) or oof.npy and predictions.npz
    if stage != "04_kfold":
        return notebook + weights + predictions
    folds = int(values.get("N_FOLDS", 5))
    per_fold = weights + (train_images // folds + test_images) * CLASSES * 4
    return notebook + folds * per_fold + predictions + test_images * (CLASSES * 4 + 64)


def cache_bytes(values: dict, *, train_images: int, test_images: int) -> int:
    """The uint8 image cache a stage builds (0 when it streams): every image at IMAGE_SIZE in its channels."""
    if values.get("CACHE", "auto") == "stream":
        return 0
    side, channels = int(values.get("IMAGE_SIZE", 224)), 3 if values.get("CHANNELS") == "rgb" else 4
    return (train_images + test_images) * side * side * channels


def space_warnings(stage: str, values: dict, *, run_dir, cache_dir, counts: tuple[int, int], kaggle_working=None):
    """Before ``stage`` starts: a line for each folder whose free space is short of what the stage writes there
    (the run folder; the image cache when it is not built yet; on Kaggle, what /kaggle/working keeps)."""
    train_images, test_images = counts
    needs = stage_bytes(stage, values, train_images=train_images, test_images=test_images)
    warnings = []
    if free_bytes(run_dir) < needs:
        warnings.append(f"{stage} writes about {describe(needs)} into {run_dir}, {describe(free_bytes(run_dir))} free")
    cache = cache_bytes(values, train_images=train_images, test_images=test_images) if stage != "00_eda" else 0
    if cache and not _cached(cache_dir, values) and free_bytes(cache_dir) < cache:
        warnings.append(
            f"{stage}'s image cache needs about {describe(cache)} in {cache_dir}, {describe(free_bytes(cache_dir))} "
            "free (CACHE=auto then decodes the images on the fly)"
        )
    if kaggle_working is not None:
        used = sum(path.stat().st_size for path in Path(kaggle_working).rglob("*") if path.is_file())
        if used + needs > KAGGLE_WORKING_BYTES:
            warnings.append(
                f"{kaggle_working} holds {describe(used)} and {stage} adds about {describe(needs)}: Kaggle keeps at "
                f"most {describe(KAGGLE_WORKING_BYTES)} of a kernel's output"
            )
    return warnings


def _cached(cache_dir, values: dict) -> bool:
    """Whether a cache at this stage's image size and channels seems to exist already (then it needs no space)."""
    side, channels = values.get("IMAGE_SIZE"), values.get("CHANNELS", "rgby")
    return Path(cache_dir).is_dir() and any(Path(cache_dir).glob(f"train-{side}px-{channels}-*.u8"))
