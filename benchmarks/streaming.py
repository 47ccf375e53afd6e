"""Streaming (``CACHE=stream``): a training pass decoding every PNG on the fly against the same pass over the cache,
at the PNGs' full size, with Wuffs and with cv2 (section 1c of ``make bench``)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import Row, Settings, Variant, log, timed, timed_in_turns
from benchmarks.loading import Context, available
from hpa_utils.dataset import cache, png
from hpa_utils.training import inputs


def _epoch(images_of, without_wuffs: bool = False):
    """One pass of inputs.make_dataset over ``images_of(context)``, batch by batch, as training reads it;
    ``without_wuffs``: with pywuffs hidden from dataset.png for the whole pass, so every PNG decodes with cv2."""

    def run(context: Context) -> float:
        batches = inputs.make_dataset(images_of(context), batch_size=context.settings.batch_size)
        original = png._decoder
        if without_wuffs:
            png._decoder = lambda: False
        try:
            return timed(lambda: [None for _ in batches])
        finally:
            png._decoder = original

    return run


def _streamed(context: Context) -> cache.StreamedImages:
    return cache.StreamedImages(context.data_dir, "train", context.ids, context.settings.source_size, "rgby")


STREAMING = (
    Variant(
        "cached pass at full size",
        _epoch(lambda c: c.batches),
        lambda c, best, name: (
            f"inputs.make_dataset over the {c.settings.source_size} px memmap (1 MiB an image at 512)"
        ),
    ),
    Variant(
        "streamed pass, Wuffs",
        _epoch(_streamed),
        lambda c, best, name: f"CACHE=stream: every image decoded again each pass, {c.threads} threads",
    ),
    Variant(
        "streamed pass, cv2",
        _epoch(_streamed, without_wuffs=True),
        "the same without pywuffs (as on Kaggle's image)",
    ),
)


def measure_streaming(settings: Settings, data_dir: Path, ids: list[str], work_dir: Path) -> list[Row]:
    """Samples/s of a training pass over the cache at the PNGs' full size against the same pass decoding on the
    fly (``CACHE=stream``), with Wuffs and with cv2: what streaming costs where the cache does not fit."""
    context = Context(settings, data_dir, ids, work_dir)
    log(f"streaming: {context.count} samples at {settings.source_size} px, cached vs decoded on the fly")
    context.batches = cache.build_cache(
        data_dir, "train", ids, settings.source_size, "rgby", cache_dir=work_dir / "streaming"
    )
    variants = available(STREAMING)
    best = timed_in_turns(variants, context, settings.repeats)
    cached = context.count / best["cached pass at full size"]
    return [
        Row(
            variant.name,
            context.count / best[variant.name],
            "samples/s",
            f"{context.count / best[variant.name] / cached:.2f}x cached",
            variant.describe(context, best),
        )
        for variant in variants
    ]
