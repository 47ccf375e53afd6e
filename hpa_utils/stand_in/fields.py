"""The first source task (issue 23): regress six properties of an embedded field of view that are not its labels.

Each field draws properties that are not the 28 protein labels (how many cells, how much of the field they cover,
the nucleus size of the cell line, each stain's brightness with the exposure), and this task regresses six of them
(``TARGETS``). They carry no label information by construction: ``synthetic.sample.render_sample_and_field`` draws
the field from a random stream that never sees the labels, before any label is rendered. Left out: the green stain's
brightness (the protein's channel) and dividing cells (labels 16 and 17 force one into the field).
"""

from __future__ import annotations

import math

import numpy as np

from hpa_utils.synthetic import render_sample_and_field, sample_label_sets

TARGETS = (
    "log cell count",
    "coverage",
    "log nucleus size",
    "log red brightness",
    "log blue brightness",
    "log yellow brightness",
)


def fields_sample(rng, side: int) -> tuple[np.ndarray, np.ndarray]:
    """One field (side, side, 3) uint8 (red, green, blue, as the ``rgb`` cache) and its six ``TARGETS``."""
    label_set = sample_label_sets(1, rng, min_per_class=0)[0]  # real label statistics; never a target
    channels, field = render_sample_and_field(label_set, side, rng)
    image = np.stack([channels[color] for color in ("red", "green", "blue")], axis=-1)
    brightness = [math.log(field.gains[color] * field.exposure) for color in ("red", "blue", "yellow")]
    targets = [math.log(field.cell_count), field.coverage, math.log(field.nucleus_scale), *brightness]
    return image, np.asarray(targets, dtype=np.float32)
