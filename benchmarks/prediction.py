"""Prediction: one model.predict call per image (the kernel's way) vs predict_tta batched, with 1 and 8 views."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from benchmarks.common import Row, Settings, Variant, log, ratio_text, timed, timed_in_turns
from hpa_utils.dataset import cache
from hpa_utils.results import predict


@dataclasses.dataclass
class Context:
    settings: Settings
    model: object
    images: np.ndarray
    count: int  # images predicted batched
    kernel_count: int  # images predicted one call each
    tta_count: int  # images predicted with 8 views

    def tta(self, images, views: int) -> float:
        return timed(
            predict.predict_tta, self.model, images, views=views, batch_size=self.settings.batch_size, progress=False
        )


def _per_image(images, seconds) -> float:
    return seconds / images


# run(context) returns seconds per image ("images/s" rows) or per call ("s/call").
PREDICTIONS = (
    Variant(
        "kernel one at a time",
        lambda c: _per_image(
            c.kernel_count,
            timed(lambda: [c.model.predict(image[None], verbose=0) for image in c.images[: c.kernel_count]]),
        ),
        lambda c, best, name: f"model.predict(image[None]) per image: {1000 * best[name]:.0f} ms per call",
        "images/s",
    ),
    Variant(
        "ours batched",
        lambda c: _per_image(c.count, c.tta(c.images[: c.count], views=1)),
        lambda c, best, name: f"predict.predict_tta views=1, {c.count} images, batch {c.settings.batch_size}",
        "images/s",
    ),
    Variant(
        "ours 8-view TTA",
        lambda c: _per_image(c.tta_count, c.tta(c.images[: c.tta_count], views=8)),
        lambda c, best, name: (
            f"views=8, {c.tta_count} images: {8 / best[name]:.1f} views/s, "
            f"{8 * best['kernel one at a time'] / best[name]:.1f}x kernel per view"
        ),
        "images/s",
    ),
    Variant(
        "predict_tta fixed cost per call",
        lambda c: c.tta(c.images[:1], views=1),
        lambda c, best, name: (
            f"a 1-image call (the last model's ViewAverage is kept per view count: traced once, not per call): "
            f"{100 * best[name] / (c.count * best['ours batched']):.0f} % of the batched call above"
        ),
        "s/call",
    ),
)


def measure_prediction(
    settings: Settings, data_dir: Path, ids: list[str], work_dir: Path, model
) -> tuple[list[Row], float]:
    """images/s of one model.predict call per image vs predict_tta batched, with 1 and 8 views.

    Returns the rows and the batched rate as a multiple of the kernel's.
    """
    images = np.array(
        cache.build_cache(data_dir, "train", ids, settings.train_size, "rgby", cache_dir=work_dir / "training")
    )
    count = min(len(images), settings.predict_images)
    context = Context(
        settings, model, images, count, min(count, settings.kernel_predict_images), min(count, settings.tta_images)
    )
    log(f"prediction: {context.kernel_count} images one at a time, {count} batched, {context.tta_count} with 8 views")
    model.predict(images[:1], verbose=0)  # warm-up: builds the predict function
    context.tta(images[: settings.batch_size], views=8)
    context.tta(images[:count], views=1)
    best = timed_in_turns(PREDICTIONS, context, settings.repeats)
    kernel_rate = 1 / best["kernel one at a time"]
    rows = []
    for variant in PREDICTIONS:
        if variant.unit == "s/call":
            rows.append(Row(variant.name, best[variant.name], "s/call", "", variant.describe(context, best)))
        else:
            rate = 1 / best[variant.name]
            rows.append(
                Row(variant.name, rate, "images/s", ratio_text(rate, kernel_rate), variant.describe(context, best))
            )
    return rows, best["kernel one at a time"] / best["ours batched"]
