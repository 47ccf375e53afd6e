"""One field of view's draws: how many cells, how much of the field they cover, each stain's brightness.

Real HPA images differ far more from image to image than within one (cell line and density, stain
strength, exposure): these per-image draws are what makes the embedded dataset's statistics match the
real ones (``hpa_utils/data/real_image_statistics.csv``; ``python -m hpa_utils synth-stats`` measures it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hpa_utils.dataset import COLORS

# Per stain: (median gain, log-normal sigma) applied to the rendered channel before the camera noise.
# Tuned so that the per-image mean, 99th percentile and bright fraction of each stain land on the real
# medians and spreads; green (the protein) varies most, as protein expression does. Green's median gain goes
# with sample.py's GREEN_GAMMA and GREEN_DARK_SCALE: over seeds 0-21 of 150 images at 256 px (synth-stats'
# 100 measured) the medians of its mean, 99th percentile and bright fraction average 1.00x, 0.97x and 1.03x
# the real ones (0.4 with the old gamma and dark level: 1.22x, 0.88x and 1.23x).
STAIN_GAINS = {"red": (1.4, 0.3), "green": (0.65, 0.5), "blue": (1.08, 0.3), "yellow": (1.6, 0.35)}
CELL_COUNT_MEDIAN, CELL_COUNT_SIGMA, CELL_COUNT_RANGE = 19.0, 0.5, (4, 60)
COVERAGE_RANGE = (0.2, 0.95)  # share of the field the cells cover
EXPOSURE_SIGMA = 0.15  # log-normal spread of one multiplier of all four stains
NUCLEUS_SCALE = (1.06, 0.15)  # nucleus size relative to its cell, per field (cell lines differ): median, sigma
OUT_OF_FOCUS_SHARE = 0.06  # of the cells, drawn blurred as if above or below the focal plane
DIVIDING_CHANCE = 0.15  # of the fields, one mitotic cell and (separately) one cytokinetic pair, whatever the labels


@dataclass(frozen=True)
class Field:
    """The per-image draws of one sample (see ``draw_field``)."""

    cell_count: int
    coverage: float
    gains: dict  # colour -> multiplier of the rendered stain
    exposure: float  # one multiplier of all four stains (the camera's exposure)
    nucleus_scale: float  # nuclei of this field's cell line, relative to the cells

    @property
    def mean_cell_radius(self) -> float:
        """The mean cell radius, in units of the field's side."""
        return math.sqrt(self.coverage / (self.cell_count * math.pi))


def draw_field(rng: np.random.Generator) -> Field:
    """Cell count (log-normal around 19), coverage, per-stain gains and exposure for one field."""
    low, high = CELL_COUNT_RANGE
    count = int(np.clip(round(CELL_COUNT_MEDIAN * math.exp(CELL_COUNT_SIGMA * rng.standard_normal())), low, high))
    coverage = float(rng.uniform(*COVERAGE_RANGE))
    normals = rng.standard_normal(len(COLORS) + 2)
    gains = {
        color: float(STAIN_GAINS[color][0] * math.exp(STAIN_GAINS[color][1] * normal))
        for color, normal in zip(COLORS, normals)
    }
    exposure = float(math.exp(EXPOSURE_SIGMA * normals[-2]))
    nucleus_scale = float(NUCLEUS_SCALE[0] * math.exp(NUCLEUS_SCALE[1] * normals[-1]))
    return Field(count, coverage, gains, exposure, nucleus_scale)
