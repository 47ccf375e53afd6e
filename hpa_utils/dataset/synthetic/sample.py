"""One sample: a field of cells, its four stains and the green patterns of its labels, as four uint8 images."""

from __future__ import annotations

import math

import cv2
import numpy as np

from hpa_utils import errors
from hpa_utils.dataset import COLORS
from hpa_utils.dataset import labels as labels_module
from hpa_utils.dataset.synthetic.cells import build_geometry
from hpa_utils.dataset.synthetic.drawing import smooth_noise
from hpa_utils.dataset.synthetic.field import OUT_OF_FOCUS_SHARE, draw_field
from hpa_utils.dataset.synthetic.green_patterns import GREEN_PATTERNS
from hpa_utils.dataset.synthetic.stains import draw_blue, draw_red, draw_yellow

MIN_IMAGE_SIZE = 32
# Real protein stains are a little less peaky than the patterns drawn: lift the mid-tones slightly. Not more:
# 0.5 lit too much of the field (the median image's bright fraction and mean ~1.25x the real ones while its 99th
# percentile was 0.88x), which no gain could centre; 0.9 with the gain in field.py centres all three.
GREEN_GAMMA = 0.9
# The green camera's dark level relative to the other stains' (a uniform 1.5-4 of 255 each): the dimmest
# tenth of real green channels average 1.8 of 255 in all (real_image_statistics.csv), under that offset alone.
GREEN_DARK_SCALE = 0.3


def render_sample(labels, image_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Render one field of view: {"red", "green", "blue", "yellow"} -> (image_size, image_size) uint8.

    Red, blue and yellow depend only on ``rng``; green is the overlay of one pattern per label (see
    green_patterns.py). Labels 16 and 17 also make sure the field holds a dividing cell, which other
    fields get by chance. Raises ValueError for a label outside 0..27 or image_size < 32.
    """
    image_size = errors.integer("image_size", image_size, minimum=MIN_IMAGE_SIZE)
    label_list = sorted({int(label) for label in labels})
    if not label_list or not all(0 <= label < labels_module.NUM_CLASSES for label in label_list):
        raise errors.InputError(
            f"labels {list(labels)!r}: expected one or more labels in 0..{labels_module.NUM_CLASSES - 1}"
        )
    streams = [np.random.default_rng(seed) for seed in rng.integers(0, 2**63, size=7)]
    geometry_rng, red_rng, yellow_rng, blue_rng, green_rng, finish_rng, field_rng = streams
    field_of_view = draw_field(field_rng)
    geometry = build_geometry(label_list, image_size, geometry_rng, field_of_view)
    red, filaments, tips = draw_red(geometry, red_rng)
    yellow, network = draw_yellow(geometry, yellow_rng)
    blue = draw_blue(geometry, blue_rng)
    context = {"filaments": filaments, "tips": tips, "network": network}
    label_seeds = green_rng.integers(0, 2**63, size=labels_module.NUM_CLASSES)  # same stream per class
    autofluorescence = np.float32(green_rng.uniform(1.0, 3.0)) * geometry.cytoplasm_mask()
    green = np.zeros((image_size, image_size), dtype=np.float32)
    for label in label_list:
        pattern_rng = np.random.default_rng(label_seeds[label])
        brightness = np.float32(pattern_rng.uniform(140.0, 220.0))
        green += GREEN_PATTERNS[label](geometry, pattern_rng, context) * brightness
    green = np.power(green * np.float32(1.0 / 255.0), np.float32(GREEN_GAMMA)) * np.float32(255.0)
    green += autofluorescence
    channels = {"red": red, "green": green, "blue": blue, "yellow": yellow}
    for color, channel in channels.items():
        channel *= np.float32(field_of_view.gains[color] * field_of_view.exposure)
    return _finish(channels, geometry, finish_rng)


def _finish(channels, geometry, rng):
    """Microscope blur (stronger on cells out of focus), uneven illumination, a dark offset and camera noise; 8-bit."""
    size, unit = geometry.size, geometry.unit
    illumination = 1.0 + 0.13 * smooth_noise(rng, size, size / 2.5)
    sigma = max(0.8 * unit, 0.45)  # the optics blur the same share of a cell at every image size
    out_of_focus = rng.random(len(geometry.cells)) < OUT_OF_FOCUS_SHARE
    defocus = geometry.per_cell(out_of_focus.astype(np.float32)) if out_of_focus.any() else None
    if defocus is not None:  # the blurred cells' light spreads past their outline: feather the weight too
        defocus = cv2.GaussianBlur(defocus, (0, 0), 6.0 * unit)
    offsets = rng.uniform(1.5, 4.0, len(COLORS)).astype(np.float32)
    offsets[COLORS.index("green")] *= np.float32(GREEN_DARK_SCALE)
    # camera noise: the sum of two uniform bytes is a (discrete) triangle, close enough to a Gaussian
    # and several times cheaper to draw; scaled to unit variance, growing with the signal
    random_bytes = rng.integers(0, 256, size=(2, len(COLORS), size, size), dtype=np.uint8)
    unit_scale = np.float32(1.0 / math.sqrt(2 * (256**2 - 1) / 12))
    result = {}
    for channel, color in enumerate(COLORS):
        signal = cv2.GaussianBlur(channels[color], (0, 0), sigma)
        if defocus is not None:
            signal += (cv2.GaussianBlur(signal, (0, 0), 4.0 * unit) - signal) * defocus
        signal *= illumination
        signal += offsets[channel]
        noise = random_bytes[0, channel].astype(np.float32)
        noise += random_bytes[1, channel]
        noise -= np.float32(255.0)
        noise *= signal * np.float32(0.035 * unit_scale) + unit_scale
        signal += noise
        np.maximum(signal, 0.0, out=signal)
        result[color] = cv2.convertScaleAbs(signal)  # rounds and saturates at 255
    return result
