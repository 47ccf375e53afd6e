"""What a stage writes, estimated from its parameters alone (before TensorFlow starts), and the warnings a stage
prints before it starts when a folder is short of it.

A stage writes its weights twice (``model.h5`` for the next stage and the best epoch's checkpoint), its predictions
and its executed notebook into the run folder; the image cache goes to its own folder. ``benchmarks/outputs.py``
measures what ``stage_bytes`` estimates by writing it, and a test keeps the two together.
"""

from __future__ import annotations

from pathlib import Path

from hpa_utils.dataset import cache, labels
from hpa_utils.stages.stage_config import StageConfig
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


def model_weights(backbone: str | None, image_size: int) -> int:
    """About how many weights a stage's model has: the backbone's (None, an upstream stage's not known yet: the
    largest), and the head's at ``image_size``'s grid (the adapter keeps 03's and 04's head at the smaller stage's
    grid, a little smaller; this errs large)."""
    backbone, channels, stride = BACKBONE_SIZES.get(backbone, BACKBONE_SIZES["resnet50"])
    grid = max(1, int(image_size) // stride)
    head = channels * HEAD_FILTERS + grid * grid * HEAD_FILTERS * DENSE_UNITS + DENSE_UNITS * CLASSES
    return backbone + head


def stage_bytes(config: StageConfig, *, train_images: int, test_images: int, backbone: str | None = None) -> int:
    """About how many bytes a stage writes into the run folder, from its parameters (``backbone``: the upstream
    stage's, for 03, which declares none; unknown: the largest)."""
    stage = config.stage
    notebook = NOTEBOOK_BYTES.get(stage, DEFAULT_NOTEBOOK_BYTES)
    if stage == "00_eda":
        return notebook
    weights = 2 * 4 * model_weights(backbone or config.backbone, config.image_size)  # model.h5, best epoch: float32
    predictions = train_images * CLASSES * 4 * 2  # predictions.npz (validation) or oof.npy and predictions.npz
    if stage != "04_kfold":
        return notebook + weights + predictions
    folds = config.n_folds
    per_fold = weights + (train_images // folds + test_images) * CLASSES * 4
    return notebook + folds * per_fold + predictions + test_images * (CLASSES * 4 + 64)


def cache_bytes(config: StageConfig, *, train_images: int, test_images: int) -> int:
    """The uint8 image cache a stage builds (0 when it streams): every image at IMAGE_SIZE in its channels (03's are
    02's: counted as four)."""
    if config.cache == "stream":
        return 0
    side, channels = config.image_size, 3 if config.channels == "rgb" else 4
    return (train_images + test_images) * side * side * channels


def space_warnings(config: StageConfig, *, run_dir, cache_dir, counts: tuple[int, int], kaggle_working=None):
    """Before ``stage`` starts: a line for each folder whose free space is short of what the stage writes there
    (the run folder; the image cache when it is not built yet; on Kaggle, what /kaggle/working keeps)."""
    train_images, test_images = counts
    stage = config.stage
    needs = stage_bytes(config, train_images=train_images, test_images=test_images)
    warnings = []
    if free_bytes(run_dir) < needs:
        warnings.append(f"{stage} writes about {describe(needs)} into {run_dir}, {describe(free_bytes(run_dir))} free")
    cache = cache_bytes(config, train_images=train_images, test_images=test_images) if stage != "00_eda" else 0
    if cache and not _cached(cache_dir, config) and free_bytes(cache_dir) < cache:
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


def _cached(cache_dir, config: StageConfig) -> bool:
    """Whether a cache at this stage's image size and channels seems to exist already (then it needs no space)."""
    side, channels = config.image_size, config.channels or "rgby"
    return Path(cache_dir).is_dir() and any(Path(cache_dir).glob(cache.cache_name("train", side, channels)))
