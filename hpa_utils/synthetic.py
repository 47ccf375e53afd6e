"""The embedded HPA-like dataset: label sets drawn from the real statistics, rendered cells, the Kaggle layout."""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import shutil
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hpa_utils import labels as labels_module

COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow")  # same order as dataset.COLORS
SPLITS: tuple[str, ...] = ("train", "test")
GENERATOR_VERSION = 1  # part of ensure_dataset's folder name: bump it when the pictures change
MIN_IMAGE_SIZE = 32
# On noisy microscopy-like images Huffman-only coding is both faster and smaller than zlib's matching,
# and the single "sub" row filter halves the encoding time for 7 % more bytes (OpenCV >= 4.11 knows it).
PNG_OPTIONS = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY) + (
    (cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB) if hasattr(cv2, "IMWRITE_PNG_FILTER") else ()
)

# Purposes of the per-sample random streams: np.random.default_rng([seed, purpose, index]).
_TRAIN_SAMPLES, _TEST_SAMPLES, _LABEL_DRAWS, _ID_DRAWS = 0, 1, 2, 3

_ANGLES = 64  # directions of each cell's polar outline (from the nucleus centre)
_TWO_PI = 2.0 * math.pi
_SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn as int(x * 16)
_ONE = 1 << _SHIFT


# --- label sets ------------------------------------------------------------------------------------


def sample_label_sets(n: int, rng: np.random.Generator, min_per_class: int = 2) -> list[list[int]]:
    """Draw ``n`` label sets from the real train.csv distribution (frequencies, set sizes, co-occurrence).

    Then every class is made to appear at least ``min_per_class`` times (or the largest smaller floor
    that ``n`` images can hold): draws of the most common sets are replaced by real label sets that
    contain a missing class, rarest class first. Deterministic given ``rng``. Raises ValueError for
    n < 1 or a negative floor.
    """
    n = _check_int("n", n, minimum=1)
    min_per_class = _check_int("min_per_class", min_per_class, minimum=0)
    sets, counts = labels_module.train_label_sets()
    membership = labels_module.to_multi_hot(sets, dtype=bool)
    draws = rng.choice(len(sets), size=n, p=counts / counts.sum())
    for floor in range(min_per_class, 0, -1):
        enforced = _enforce_floor(draws.copy(), floor, membership, counts, rng)
        if enforced is not None:
            draws = enforced
            break
    return [list(sets[index]) for index in draws]


def _enforce_floor(draws, floor, membership, set_counts, rng):
    """Replace draws until every class occurs ``floor`` times; None when n images cannot hold it."""
    real_class_counts = membership.T.astype(np.int64) @ set_counts
    class_counts = membership[draws].sum(axis=0)
    while True:
        missing = np.flatnonzero(class_counts < floor)
        if missing.size == 0:
            return draws
        label = missing[np.argmin(real_class_counts[missing])]
        # a draw may go only if every class it carries stays at or above the floor without it
        removable_sets = np.all(~membership | (class_counts > floor), axis=1)
        removable = np.flatnonzero(removable_sets[draws])
        if removable.size == 0:
            return None
        set_frequency = np.bincount(draws[removable], minlength=len(membership))
        most_common = np.flatnonzero(set_frequency == set_frequency.max())
        victim_set = most_common[rng.integers(most_common.size)]
        victim = rng.choice(removable[draws[removable] == victim_set])
        candidates = np.flatnonzero(membership[:, label])
        weights = set_counts[candidates] / set_counts[candidates].sum()
        replacement = candidates[rng.choice(candidates.size, p=weights)]
        class_counts -= membership[draws[victim]]
        class_counts += membership[replacement]
        draws[victim] = replacement


# --- field geometry ---------------------------------------------------------------------------------


@dataclass
class _Cell:
    """One cell of a field of view: outline, nucleus and where its organelles sit (pixels, float)."""

    center: np.ndarray
    axes: tuple[float, float]
    angle: float
    harmonics: np.ndarray  # rows (order, amplitude, phase) that make the outline irregular
    nucleus_center: np.ndarray
    nucleus_axes: tuple[float, float]
    nucleus_angle: float
    nucleus_harmonics: np.ndarray
    nucleoli: list = field(default_factory=list)  # (x, y, radius)
    centrosome_angle: float = 0.0  # direction (from the nucleus centre) of the MTOC / Golgi side
    kind: str = "interphase"  # "interphase", "mitotic" (rounded, metaphase plate) or "daughter"
    spindle_angle: float = 0.0
    # filled in once the cells are rasterised:
    index: int = -1
    edge_radius: np.ndarray | None = None  # per direction, from the nucleus centre to the cell edge
    nucleus_radius: np.ndarray | None = None  # per direction, from the nucleus centre to its border
    neighbour: np.ndarray | None = None  # per direction: id of the cell beyond the edge, -1 background, -2 frame

    @property
    def radius(self) -> float:
        return math.sqrt(self.axes[0] * self.axes[1])

    @property
    def mean_nucleus_radius(self) -> float:
        return math.sqrt(self.nucleus_axes[0] * self.nucleus_axes[1])

    def reach(self) -> float:
        return max(self.axes) * (1.0 + np.abs(self.harmonics[:, 1]).sum()) + 1.0

    def radii_at(self, angles, table):
        """Interpolate a per-direction table (edge_radius, nucleus_radius) at any angles."""
        return np.interp(np.mod(angles, _TWO_PI), _ANGLE_GRID, table, period=_TWO_PI)

    def cytoplasm_points(self, count, rng, low=0.06, high=0.94, power=0.5):
        """``count`` points between nucleus border (t=0) and cell edge (t=1); power 0.5 spreads them about evenly."""
        angles = rng.uniform(0.0, _TWO_PI, count)
        fraction = low + (high - low) * rng.random(count) ** power
        return self.polar_points(angles, fraction), angles

    def polar_points(self, angles, fraction):
        """Points at ``fraction`` of the way from the nucleus border to the cell edge, per direction."""
        inner = self.radii_at(angles, self.nucleus_radius)
        outer = self.radii_at(angles, self.edge_radius)
        radius = inner + fraction * np.maximum(outer - inner, 0.0)
        return self.nucleus_center + np.stack([np.cos(angles), np.sin(angles)], axis=-1) * radius[..., None]

    def nucleus_points(self, count, rng, high=0.8):
        """``count`` points inside the nucleus, uniform by area up to ``high`` of its radius."""
        angles = rng.uniform(0.0, _TWO_PI, count)
        fraction = high * np.sqrt(rng.random(count))
        radius = self.radii_at(angles, self.nucleus_radius) * fraction
        return self.nucleus_center + np.stack([np.cos(angles), np.sin(angles)], axis=-1) * radius[:, None]

    def beside_nucleus(self, angle, gap):
        """The point ``gap`` pixels outside the nucleus border in direction ``angle``."""
        radius = float(self.radii_at(np.array([angle]), self.nucleus_radius)[0]) + gap
        return self.nucleus_center + radius * np.array([math.cos(angle), math.sin(angle)])


_ANGLE_GRID = np.linspace(0.0, _TWO_PI, _ANGLES, endpoint=False)


def _random_harmonics(rng, largest):
    orders = np.arange(2, 5, dtype=np.float64)
    return np.stack([orders, rng.uniform(0.0, largest, 3) / orders * 2.0, rng.uniform(0.0, _TWO_PI, 3)], axis=1)


def _new_cell(rng, center, radius, unit):
    elongation = rng.uniform(1.0, 1.9)
    axes = (radius * math.sqrt(elongation), radius / math.sqrt(elongation))
    angle = rng.uniform(0.0, math.pi)
    harmonics = _random_harmonics(rng, 0.09)
    offset_angle = rng.uniform(0.0, _TWO_PI)
    offset = rng.uniform(0.0, 0.22) * radius
    nucleus_center = np.asarray(center) + offset * np.array([math.cos(offset_angle), math.sin(offset_angle)])
    nucleus_size = rng.uniform(0.36, 0.5) * radius
    nucleus_elongation = rng.uniform(1.0, 1.5)
    nucleus_axes = (nucleus_size * math.sqrt(nucleus_elongation), nucleus_size / math.sqrt(nucleus_elongation))
    nucleus_angle = angle + rng.normal(0.0, 0.35)
    cell = _Cell(
        center=np.asarray(center, dtype=np.float64),
        axes=axes,
        angle=angle,
        harmonics=harmonics,
        nucleus_center=nucleus_center,
        nucleus_axes=nucleus_axes,
        nucleus_angle=nucleus_angle,
        nucleus_harmonics=_random_harmonics(rng, 0.04),
        centrosome_angle=rng.uniform(0.0, _TWO_PI),
    )
    for _ in range(rng.integers(1, 5)):
        where = rng.uniform(0.0, _TWO_PI)
        distance = rng.uniform(0.0, 0.5) * nucleus_size
        cell.nucleoli.append(
            (
                nucleus_center[0] + distance * math.cos(where),
                nucleus_center[1] + distance * math.sin(where),
                max(rng.uniform(0.12, 0.22) * nucleus_size, 1.2 * unit, 0.6),
            )
        )
    return cell


def _make_mitotic(cell, spindle_angle):
    """Turn ``cell`` into a rounded cell in metaphase: condensed chromosomes in a plate, a spindle axis."""
    radius = cell.radius * 0.8
    cell.axes = (radius, radius * 0.95)
    cell.harmonics = cell.harmonics * np.array([1.0, 0.2, 1.0])
    cell.nucleus_center = cell.center.copy()
    cell.nucleus_axes = (0.12 * radius, 0.5 * radius)
    cell.nucleus_angle = spindle_angle
    cell.nucleus_harmonics = cell.nucleus_harmonics * np.array([1.0, 2.0, 1.0])
    cell.nucleoli = []
    cell.kind = "mitotic"
    cell.spindle_angle = spindle_angle


def _make_daughters(cell, rng_values, unit):
    """Replace ``cell`` by two small round daughter cells, apart along an axis (a cytokinetic pair)."""
    axis_angle, size_a, size_b, nucleus_a, nucleus_b = rng_values
    direction = np.array([math.cos(axis_angle), math.sin(axis_angle)])
    daughters = []
    for sign, size, nucleus in ((1.0, size_a, nucleus_a), (-1.0, size_b, nucleus_b)):
        radius = cell.radius * size
        center = cell.center + sign * direction * (radius + cell.radius * 0.16 + 3.0 * unit)
        nucleus_size = radius * nucleus
        nucleus_center = center + sign * direction * radius * 0.08
        daughters.append(
            _Cell(
                center=center,
                axes=(radius * 1.08, radius / 1.08),
                angle=axis_angle,
                harmonics=cell.harmonics * np.array([1.0, 0.4, 1.0]),
                nucleus_center=nucleus_center,
                nucleus_axes=(nucleus_size * 1.05, nucleus_size / 1.05),
                nucleus_angle=axis_angle + math.pi / 2,
                nucleus_harmonics=cell.nucleus_harmonics,
                centrosome_angle=axis_angle + (0.0 if sign > 0 else math.pi) + math.pi,
                kind="daughter",
            )
        )
    bridge = (daughters[0].center + daughters[1].center) / 2.0
    return daughters, bridge, direction


@dataclass
class _Field:
    """The rasterised geometry of one sample: per-pixel maps plus the cells' polar outlines."""

    size: int
    unit: float  # pixels per pixel of a 512 px image: all organelle sizes scale with it
    cells: list
    cell_id: np.ndarray  # int16, -1 background
    cell_distance: np.ndarray  # 0 at the cell centre, 1 at its outline (float32, large outside)
    nucleus_distance: np.ndarray  # 0 at the nucleus centre, 1 at its border (float32, large outside)
    bridge: tuple | None = None  # (midpoint, axis direction, half length) of a cytokinetic pair
    _cache: dict = field(default_factory=dict)

    def nucleus_mask(self):
        if "nucleus" not in self._cache:
            softness = 0.08
            self._cache["nucleus"] = np.clip((1.0 - self.nucleus_distance) / softness + 0.5, 0.0, 1.0)
        return self._cache["nucleus"]

    def cell_mask(self):
        if "cell" not in self._cache:
            self._cache["cell"] = np.clip((1.0 - self.cell_distance) / 0.05, 0.0, 1.0)
        return self._cache["cell"]

    def cytoplasm_mask(self):
        if "cytoplasm" not in self._cache:
            self._cache["cytoplasm"] = self.cell_mask() * (1.0 - self.nucleus_mask())
        return self._cache["cytoplasm"]

    def per_cell(self, values, background=0.0):
        """Map per-cell values (one per cell) onto the pixels (float32)."""
        if "index" not in self._cache:
            self._cache["index"] = (self.cell_id + 1).astype(np.intp)
        table = np.empty(len(self.cells) + 1, dtype=np.float32)
        table[0] = background
        table[1:] = values
        return np.take(table, self._cache["index"])


def _place_cells(rng, size, unit):
    """3-12 cells of varying size and shape, grown as a colony so that neighbours touch."""
    count = int(rng.integers(3, 13))
    coverage = rng.uniform(0.45, 0.85)
    mean_radius = size * math.sqrt(coverage / (count * math.pi))
    radii = mean_radius * rng.uniform(0.75, 1.25, count)
    centers = [rng.uniform(0.3, 0.7, 2) * size]
    for radius in radii[1:]:
        placed = None
        for _ in range(30):
            anchor_index = rng.integers(len(centers))
            direction = rng.uniform(0.0, _TWO_PI)
            distance = (radius + radii[anchor_index]) * rng.uniform(0.75, 0.95)
            candidate = centers[anchor_index] + distance * np.array([math.cos(direction), math.sin(direction)])
            inside = np.all((candidate > 0.04 * size) & (candidate < 0.96 * size))
            clear = all(
                np.hypot(*(candidate - other)) > 0.8 * (radius + other_radius)
                for other, other_radius in zip(centers, radii)
            )
            if inside and clear:
                placed = candidate
                break
        centers.append(placed if placed is not None else rng.uniform(0.1, 0.9, 2) * size)
    return [_new_cell(rng, center, radius, unit) for center, radius in zip(centers, radii)]


def _normalised_distance(shape_box, center, axes, angle, harmonics):
    """Distance from ``center`` in units of the (wobbly) ellipse radius, over a pixel box (y0, y1, x0, x1).

    A smooth field: boxes wider than 48 pixels are computed on every other pixel (at the centres of
    2x2 blocks) and interpolated, which is exact enough and four times cheaper.
    """
    y0, y1, x0, x1 = shape_box
    height, width = y1 - y0, x1 - x0
    if min(height, width) > 48:
        ys = np.arange(y0 + 0.5, y1, 2.0, dtype=np.float32)
        xs = np.arange(x0 + 0.5, x1, 2.0, dtype=np.float32)
        coarse = _normalised_distance_at(xs, ys, center, axes, angle, harmonics)
        fine = cv2.resize(coarse, (2 * xs.size, 2 * ys.size), interpolation=cv2.INTER_LINEAR)
        return fine[:height, :width]
    ys = np.arange(y0, y1, dtype=np.float32)
    xs = np.arange(x0, x1, dtype=np.float32)
    return _normalised_distance_at(xs, ys, center, axes, angle, harmonics)


def _normalised_distance_at(xs, ys, center, axes, angle, harmonics):
    ys = (ys - np.float32(center[1]))[:, None]
    xs = (xs - np.float32(center[0]))[None, :]
    cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    u = (xs * cos + ys * sin) / np.float32(axes[0])
    v = (ys * cos - xs * sin) / np.float32(axes[1])
    rho = np.sqrt(u * u + v * v)
    # cos(k*theta + phase) from cos/sin of theta by the angle-sum recurrence (no arctan2, no cos)
    inverse = 1.0 / np.maximum(rho, np.float32(1e-6))
    cos_1, sin_1 = u * inverse, v * inverse
    cos_k, sin_k = cos_1, sin_1
    wobble = np.ones_like(rho)
    for order, amplitude, phase in harmonics:  # orders 2, 3, 4 in sequence
        cos_k, sin_k = cos_k * cos_1 - sin_k * sin_1, sin_k * cos_1 + cos_k * sin_1
        if amplitude > 0:
            wobble += cos_k * np.float32(amplitude * math.cos(phase)) - sin_k * np.float32(amplitude * math.sin(phase))
    return rho / wobble


def _wobbly_radius(angles, axes, angle, harmonics):
    """Analytic radius of the wobbly ellipse ``_normalised_distance`` measures, per direction."""
    relative = angles - angle
    u = np.cos(relative) / axes[0]
    v = np.sin(relative) / axes[1]
    rho = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    wobble = np.ones_like(rho)
    for order, amplitude, phase in harmonics:
        wobble += amplitude * np.cos(order * theta + phase)
    return wobble / rho


def _box(center, reach, size):
    x0 = max(int(math.floor(center[0] - reach)), 0)
    y0 = max(int(math.floor(center[1] - reach)), 0)
    x1 = min(int(math.ceil(center[0] + reach)) + 1, size)
    y1 = min(int(math.ceil(center[1] + reach)) + 1, size)
    return y0, y1, x0, x1


def _rasterise(cells, size, unit, bridge=None):
    """Per-pixel cell ids and distances, then each cell's polar outline measured on those pixels."""
    cell_id = np.full((size, size), -1, dtype=np.int16)
    cell_distance = np.full((size, size), 9.0, dtype=np.float32)
    for index, cell in enumerate(cells):
        cell.index = index
        box = _box(cell.center, cell.reach(), size)
        if box[0] >= box[1] or box[2] >= box[3]:
            continue
        distance = _normalised_distance(box, cell.center, cell.axes, cell.angle, cell.harmonics)
        region = cell_distance[box[0] : box[1], box[2] : box[3]]
        take = distance < np.minimum(region, 1.0)
        region[take] = distance[take]
        cell_id[box[0] : box[1], box[2] : box[3]][take] = index
    if bridge is not None:  # the gap between two daughter cells belongs to no other cell
        midpoint, _, half = bridge
        box = _box(midpoint, half * 1.6, size)
        ys = np.arange(box[0], box[1])[:, None] - midpoint[1]
        xs = np.arange(box[2], box[3])[None, :] - midpoint[0]
        region = cell_id[box[0] : box[1], box[2] : box[3]]
        daughters = [index for index, cell in enumerate(cells) if cell.kind == "daughter"]
        clear = (np.hypot(xs, ys) < half * 1.6) & ~np.isin(region, daughters)
        region[clear] = -1
        cell_distance[box[0] : box[1], box[2] : box[3]][clear] = 9.0
    nucleus_distance = np.full((size, size), 9.0, dtype=np.float32)
    for cell in cells:
        reach = max(cell.nucleus_axes) * 1.6 + 2.0
        box = _box(cell.nucleus_center, reach, size)
        if box[0] >= box[1] or box[2] >= box[3]:
            continue
        distance = _normalised_distance(box, cell.nucleus_center, cell.nucleus_axes, cell.nucleus_angle,
                                        cell.nucleus_harmonics)
        own = cell_id[box[0] : box[1], box[2] : box[3]] == cell.index
        nucleus_distance[box[0] : box[1], box[2] : box[3]][own] = distance[own]
    _measure_outlines(cells, cell_id, size, unit)
    return _Field(size, unit, cells, cell_id, cell_distance, nucleus_distance, bridge)


def _measure_outlines(cells, cell_id, size, unit):
    """March rays from each nucleus centre to find, per direction, the cell edge and what lies beyond."""
    step = max(0.7, 1.2 * unit)
    cos, sin = np.cos(_ANGLE_GRID), np.sin(_ANGLE_GRID)
    for cell in cells:
        reach = cell.reach() + np.hypot(*(cell.nucleus_center - cell.center)) + 2 * step
        radii = np.arange(1, int(reach / step) + 2) * step
        xs = np.rint(cell.nucleus_center[0] + cos[:, None] * radii[None, :]).astype(np.int64)
        ys = np.rint(cell.nucleus_center[1] + sin[:, None] * radii[None, :]).astype(np.int64)
        in_frame = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
        ids = np.full(xs.shape, -2, dtype=np.int64)
        ids[in_frame] = cell_id[ys[in_frame], xs[in_frame]]
        outside = ids != cell.index
        outside[:, -1] = True
        first_out = np.argmax(outside, axis=1)
        rows = np.arange(_ANGLES)
        cell.edge_radius = np.maximum(radii[first_out] - step * 0.5, step)
        cell.neighbour = ids[rows, first_out]
        nucleus = _wobbly_radius(_ANGLE_GRID, cell.nucleus_axes, cell.nucleus_angle, cell.nucleus_harmonics)
        cell.nucleus_radius = np.minimum(nucleus, cell.edge_radius * 0.85)


def _central_cells(cells, size, exclude):
    """Indices of the cells whose centre is well inside the frame (else the most central one)."""
    candidates = [index for index in range(len(cells)) if index != exclude]
    inside = [index for index in candidates if np.all(np.abs(cells[index].center / size - 0.5) < 0.3)]
    if inside:
        return inside
    return [min(candidates, key=lambda index: float(np.abs(cells[index].center / size - 0.5).max()))]


def _build_field(labels, size, rng):
    unit = size / 512.0
    cells = _place_cells(rng, size, unit)
    # Dividing cells appear in some fields whatever the labels (as in the real data); the labels
    # 16 and 17 make sure the field has one, because their green pattern lives in it.
    mitotic_chance, mitotic_pick, spindle_angle = rng.random(), rng.random(), rng.uniform(0.0, math.pi)
    dividing_chance, dividing_pick = rng.random(), rng.random()
    dividing_values = (rng.uniform(0.0, math.pi), *rng.uniform(0.5, 0.6, 2), *rng.uniform(0.42, 0.52, 2))
    bridge = None
    mitotic_index = None
    if 17 in labels or mitotic_chance < 0.08:
        choices = _central_cells(cells, size, exclude=None)
        mitotic_index = choices[int(mitotic_pick * len(choices))]
        _make_mitotic(cells[mitotic_index], spindle_angle)
    if 16 in labels or dividing_chance < 0.08:
        choices = _central_cells(cells, size, exclude=mitotic_index)
        parent = choices[int(dividing_pick * len(choices))]
        daughters, midpoint, direction = _make_daughters(cells[parent], dividing_values, unit)
        gap = np.hypot(*(daughters[0].center - daughters[1].center)) - daughters[0].axes[0] - daughters[1].axes[0]
        bridge = (midpoint, direction, gap / 2.0 + 3.0 * unit)
        cells[parent : parent + 1] = daughters
    return _rasterise(cells, size, unit, bridge)


# --- drawing helpers --------------------------------------------------------------------------------


def _fixed(points):
    """Float pixel coordinates as cv2's fixed-point int32 (shift = 4)."""
    return np.rint(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32)


def _line_width(value, thickness):
    """cv2 draws whole pixels: a line meant to be thinner than one pixel is drawn dimmer instead."""
    drawn = max(int(round(thickness)), 1)
    return int(round(value * min(max(thickness / drawn, 0.3), 1.0))), drawn


def _disc(canvas, point, radius, value, thickness=None):
    """A filled disc, or a ring ``thickness`` pixels wide (float)."""
    if thickness is not None:
        value, thickness = _line_width(value, thickness)
    cv2.circle(canvas, tuple(int(v) for v in _fixed(point)), max(int(round(radius * _ONE)), 1), value,
               -1 if thickness is None else thickness, cv2.LINE_AA, _SHIFT)


def _polylines(canvas, curves, value, thickness=1.0, closed=False):
    """Anti-aliased curves (each an (n, 2) array of float pixel coordinates), ``thickness`` pixels wide."""
    if len(curves):
        value, drawn = _line_width(value, thickness)
        cv2.polylines(canvas, [_fixed(curve).reshape(-1, 1, 2) for curve in curves], closed, value, drawn,
                      cv2.LINE_AA, _SHIFT)


def _spots(size, points, amplitudes, sigma):
    """Gaussian spots of peak ~``amplitudes`` at ``points`` (fast: splat, then one blur)."""
    canvas = np.zeros((size, size), dtype=np.float32)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    xs, ys = np.rint(points[:, 0]).astype(np.int64), np.rint(points[:, 1]).astype(np.int64)
    keep = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
    np.add.at(canvas, (ys[keep], xs[keep]), np.broadcast_to(amplitudes, points.shape[:1])[keep])
    sigma = max(sigma, 0.5)
    return cv2.GaussianBlur(canvas, (0, 0), sigma) * np.float32(2.0 * math.pi * sigma * sigma)


def _smooth_noise(rng, size, feature, dtype=np.float32):
    """Unit-variance random field with blobs about ``feature`` pixels across."""
    grid = max(int(math.ceil(size / max(feature, 1.0))) + 1, 2)
    coarse = rng.standard_normal((grid, grid)).astype(dtype)
    values = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    values *= np.float32(1.0 / max(float(values[::4, ::4].std()), 1e-6))
    return values


def _bent_curves(starts, ends, wobble, rng, points=6):
    """Many slightly bent lines at once: (n, points, 2) from ``starts`` to ``ends`` (sideways spread ``wobble``)."""
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    direction = ends - starts
    length = np.maximum(np.hypot(direction[:, 0], direction[:, 1]), 1e-6)
    normal = np.stack([-direction[:, 1], direction[:, 0]], axis=1) / length[:, None]
    offsets = np.cumsum(rng.standard_normal((len(starts), points)), axis=1)
    offsets -= offsets[:, :1] + (offsets[:, -1:] - offsets[:, :1]) * np.linspace(0.0, 1.0, points)[None, :]
    offsets *= np.broadcast_to(wobble, (len(starts),))[:, None]
    along = np.linspace(0.0, 1.0, points)[None, :, None]
    return starts[:, None, :] + along * direction[:, None, :] + offsets[:, :, None] * normal[:, None, :]


def _polylines_graded(canvas, curves, values, thickness=1.0):
    """Draw curves in a few brightness groups (one cv2 call per group)."""
    values = np.asarray(values)
    for value in np.unique(values):
        _polylines(canvas, list(curves[values == value]), int(value), thickness)


# --- the four stains --------------------------------------------------------------------------------


def _draw_red(geometry, rng):
    """Microtubules: fine filaments from around the nucleus to the cell edge. Returns (image, filaments, tips)."""
    size, unit = geometry.size, geometry.unit
    filaments = np.zeros((size, size), dtype=np.uint8)
    tips = []
    for cell in geometry.cells:
        if cell.kind == "mitotic":
            _draw_spindle(filaments, cell, rng, unit, value_range=(70, 130), count=14)
            continue
        perimeter = float(np.mean(cell.edge_radius)) * _TWO_PI
        count = int(np.clip(perimeter / (9.0 * unit), 12, 110))
        angles = rng.uniform(0.0, _TWO_PI, count)
        starts = cell.polar_points(angles, rng.uniform(-0.35, 0.3, count))
        ends = cell.polar_points(angles + rng.normal(0.0, 0.3, count), rng.uniform(0.8, 0.97, count))
        lengths = np.hypot(*(ends - starts).T)
        curves = _bent_curves(starts, ends, 0.03 * lengths, rng)
        _polylines_graded(filaments, curves, rng.choice(np.arange(50, 160, 15), count), unit)
        tips.append(ends)
    if geometry.bridge is not None:
        midpoint, direction, half = geometry.bridge
        _polylines(filaments, [np.stack([midpoint - direction * half * 1.6, midpoint + direction * half * 1.6])],
                   90, 1.5 * unit)
    tips = np.concatenate(tips) if tips else np.zeros((0, 2))
    diffuse = geometry.cytoplasm_mask() * geometry.per_cell(rng.uniform(14.0, 26.0, len(geometry.cells)))
    diffuse += geometry.nucleus_mask() * geometry.per_cell(rng.uniform(5.0, 10.0, len(geometry.cells)))
    image = diffuse + filaments.astype(np.float32) * geometry.cell_mask() * np.float32(rng.uniform(0.8, 1.1))
    return image, filaments, tips


def _draw_spindle(canvas, cell, rng, unit, value_range, count):
    """Spindle fibres from two poles to the metaphase plate, plus short astral rays."""
    axis = np.array([math.cos(cell.spindle_angle), math.sin(cell.spindle_angle)])
    across = np.array([-axis[1], axis[0]])
    plate_half = cell.nucleus_axes[1] * 0.9
    pole_distance = cell.radius * 0.6
    curves = []
    for sign in (1.0, -1.0):
        pole = cell.center + sign * axis * pole_distance
        for offset in np.linspace(-plate_half, plate_half, count) + rng.normal(0.0, 0.5 * unit, count):
            curves.append(np.stack([pole, cell.center + across * offset + sign * axis * cell.nucleus_axes[0]]))
        for angle in rng.uniform(-1.0, 1.0, count // 2):
            ray = np.array([math.cos(angle), math.sin(angle)])
            ray = ray[0] * sign * axis + ray[1] * across
            curves.append(np.stack([pole, pole + ray * cell.radius * rng.uniform(0.15, 0.3)]))
    _polylines(canvas, curves, int(rng.integers(*value_range)), unit)


def _draw_yellow(geometry, rng):
    """Endoplasmic reticulum: a reticular network, brightest around the nucleus. Returns (image, network)."""
    size, unit = geometry.size, geometry.unit
    noise = _smooth_noise(rng, size, 22.0 * unit) + 0.6 * _smooth_noise(rng, size, 9.0 * unit)
    noise *= np.float32(1.0 / 0.32)
    network = np.exp(-np.square(noise, out=noise), out=noise)
    perinuclear = np.clip(1.25 - geometry.cell_distance, 0.0, 1.0)
    perinuclear *= np.sqrt(perinuclear)
    envelope = (geometry.nucleus_distance - np.float32(1.02)) * np.float32(1.0 / 0.09)
    envelope = np.exp(-np.square(envelope, out=envelope), out=envelope)
    weight = geometry.cell_mask() * (perinuclear * (1.0 - 0.8 * geometry.nucleus_mask()) + 0.7 * envelope)
    weight *= geometry.per_cell(rng.uniform(0.7, 1.0, len(geometry.cells)))
    network *= weight
    image = network * np.float32(rng.uniform(140, 200)) + weight * np.float32(rng.uniform(18, 30))
    return image, network


def _draw_blue(geometry, rng):
    """Nuclei: bright textured ovals with darker nucleoli; condensed chromosomes in mitotic cells."""
    size, unit = geometry.size, geometry.unit
    texture = _smooth_noise(rng, size, 7.0 * unit)
    cells = geometry.cells
    brightness = rng.uniform(90.0, 170.0, len(cells))
    brightness *= np.array([1.5 if cell.kind == "mitotic" else 1.0 for cell in cells])
    profile = 1.0 - 0.3 * np.square(np.minimum(geometry.nucleus_distance, 1.0))
    image = geometry.nucleus_mask() * profile * (1.0 + 0.18 * texture) * geometry.per_cell(brightness)
    holes = np.zeros((size, size), dtype=np.uint8)
    for cell in cells:
        for x, y, radius in cell.nucleoli:
            _disc(holes, (x, y), radius, 255)
    if holes.any():
        holes = cv2.GaussianBlur(holes, (0, 0), max(unit, 0.5)).astype(np.float32) / np.float32(255 / 0.45)
        image *= 1.0 - holes
    return image


# --- green: one pattern per class -------------------------------------------------------------------


def _cell_gains(geometry, rng, low=0.45, high=1.0, share=1.0):
    """A brightness per cell; a cell shows the pattern with probability ``share``."""
    gains = rng.uniform(low, high, len(geometry.cells))
    gains[rng.random(len(geometry.cells)) > share] = 0.0
    return gains


def _green_nucleoplasm(geometry, rng, context):  # 0
    texture = 1.0 + 0.08 * _smooth_noise(rng, geometry.size, 10.0 * geometry.unit)
    return geometry.nucleus_mask() * texture * geometry.per_cell(_cell_gains(geometry, rng, 0.6, 1.0)) * 0.75


def _green_nuclear_membrane(geometry, rng, context):  # 1
    width = np.float32(max(0.05, 1.4 * geometry.unit / 30.0))
    ring = np.exp(-np.square((geometry.nucleus_distance - 0.97) / width))
    return ring * geometry.per_cell(_cell_gains(geometry, rng, 0.6, 1.0))


def _green_nucleoli(geometry, rng, context):  # 2
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        for x, y, radius in cell.nucleoli:
            _disc(canvas, (x, y), radius * 1.05, int(255 * gain))
    return cv2.GaussianBlur(canvas, (0, 0), max(0.8 * geometry.unit, 0.5)).astype(np.float32) / 255.0


def _green_fibrillar_center(geometry, rng, context):  # 3
    points, amplitudes = [], []
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        for x, y, radius in cell.nucleoli:
            count = int(rng.integers(4, 11))
            angles = rng.uniform(0.0, _TWO_PI, count)
            distance = radius * 0.8 * np.sqrt(rng.random(count))
            points.append(np.stack([x + distance * np.cos(angles), y + distance * np.sin(angles)], 1))
            amplitudes.append(np.full(count, gain))
    if not points:
        return np.zeros((geometry.size, geometry.size), np.float32)
    glow = _green_nucleoli(geometry, rng, context) * 0.12  # the nucleoli around the dots, faintly
    return glow + _spots(geometry.size, np.concatenate(points), np.concatenate(amplitudes), 0.8 * geometry.unit) * 1.6


def _green_speckles(geometry, rng, context):  # 4
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        count = int(rng.integers(10, 31))
        for point in cell.nucleus_points(count, rng, high=0.85):
            axes = rng.uniform(1.5, 3.5, 2) * unit
            cv2.ellipse(canvas, tuple(int(v) for v in _fixed(point)),
                        tuple(max(int(round(a * _ONE)), 1) for a in axes), float(rng.uniform(0, 180)), 0, 360,
                        int(255 * gain * rng.uniform(0.6, 1.0)), -1, cv2.LINE_AA, _SHIFT)
    speckles = cv2.GaussianBlur(canvas, (0, 0), max(0.7 * unit, 0.5)).astype(np.float32) / 255.0
    return speckles + 0.12 * geometry.nucleus_mask()


def _green_nuclear_bodies(geometry, rng, context):  # 5
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.7, 1.0)):
        for point in cell.nucleus_points(int(rng.integers(1, 7)), rng, high=0.8):
            _disc(canvas, point, rng.uniform(2.0, 3.4) * unit, int(255 * gain))
    return canvas.astype(np.float32) / 255.0


def _green_endoplasmic_reticulum(geometry, rng, context):  # 6
    return context["network"] * geometry.per_cell(_cell_gains(geometry, rng, 0.6, 1.0)) * 1.2


def _green_golgi(geometry, rng, context):  # 7
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        if cell.kind == "mitotic":
            continue
        span = rng.uniform(0.35, 0.75)
        angles = cell.centrosome_angle + np.linspace(-span, span, 9)
        gap = rng.uniform(2.0, 5.0) * unit
        radii = cell.radii_at(angles, cell.nucleus_radius) + gap
        arc = cell.nucleus_center + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
        thickness = rng.uniform(5.0, 9.0) * unit
        _polylines(canvas, [arc], int(255 * gain), thickness)
        for point in arc[1:-1:2]:
            _disc(canvas, point + rng.normal(0.0, 2.0 * unit, 2), rng.uniform(3.0, 5.0) * unit, int(255 * gain))
    return cv2.GaussianBlur(canvas, (0, 0), max(1.0 * unit, 0.5)).astype(np.float32) / 255.0


def _dots_in_cytoplasm(geometry, rng, per_100_pixels, radius_range, ring_share=0.0, low=0.06, high=0.94,
                       power=0.5, share=1.0, thickness=1.0):
    """Round dots (some hollow) over each cell's cytoplasm; ``per_100_pixels`` scales with the cell radius."""
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.55, 1.0, share)):
        if gain == 0.0:
            continue
        count = max(int(round(rng.uniform(*per_100_pixels) * (cell.radius / (100.0 * unit)) ** 2)), 1)
        points, _ = cell.cytoplasm_points(count, rng, low, high, power)
        radii = rng.uniform(*radius_range, count) * unit
        hollow = rng.random(count) < ring_share
        values = (255 * gain * rng.uniform(0.6, 1.0, count)).astype(int)
        for point, radius, is_ring, value in zip(points, radii, hollow, values):
            _disc(canvas, point, radius, int(value), thickness * unit if is_ring else None)
    return canvas.astype(np.float32) / 255.0


def _green_peroxisomes(geometry, rng, context):  # 8
    return _dots_in_cytoplasm(geometry, rng, (70, 110), (0.9, 1.6))


def _green_endosomes(geometry, rng, context):  # 9
    return _dots_in_cytoplasm(geometry, rng, (22, 40), (2.0, 3.5), ring_share=0.35, power=0.7)


def _green_lysosomes(geometry, rng, context):  # 10
    return _dots_in_cytoplasm(geometry, rng, (22, 40), (1.8, 3.2), ring_share=0.1, low=0.02, high=0.45,
                              power=1.3)


def _green_intermediate_filaments(geometry, rng, context):  # 11
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        if cell.kind == "mitotic":
            continue
        count = int(rng.integers(8, 15))
        steps = np.linspace(0.0, 1.0, 24)[None, :]
        spans = rng.uniform(0.8, 2.6, (count, 1)) * rng.choice([-1.0, 1.0], (count, 1))
        angles = rng.uniform(0.0, _TWO_PI, (count, 1)) + spans * steps
        levels = rng.uniform(0.03, 0.6, (count, 1)) + rng.uniform(-0.35, 0.35, (count, 1)) * steps
        waves = 0.07 * np.sin(rng.uniform(4.0, 14.0, (count, 1)) * steps + rng.uniform(0.0, _TWO_PI, (count, 1)))
        curves = cell.polar_points(angles, np.clip(levels + waves, 0.02, 0.95))
        values = (200 * gain * rng.choice([0.45, 0.6, 0.75, 0.9, 1.0], count)).astype(int)
        _polylines_graded(canvas, curves, values, 1.2 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.6 * unit, 0.5)).astype(np.float32) / 200.0


def _green_actin(geometry, rng, context):  # 12
    unit = geometry.unit
    size = geometry.size
    canvas = np.zeros((size, size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        box = _box(cell.center, cell.reach(), size)
        if box[0] >= box[1] or box[2] >= box[3]:
            continue
        local = np.zeros((box[1] - box[0], box[3] - box[2]), dtype=np.uint8)
        direction_angle = cell.angle + rng.normal(0.0, 0.3)
        direction = np.array([math.cos(direction_angle), math.sin(direction_angle)])
        across = np.array([-direction[1], direction[0]])
        reach = cell.reach()
        origin = cell.center - np.array([box[2], box[0]])
        spacing = rng.uniform(7.0, 12.0) * unit
        curves, values = [], []
        for offset in np.arange(-reach, reach, spacing) + rng.uniform(0, spacing):
            shift = rng.uniform(-0.3, 0.3) * reach
            length = rng.uniform(0.3, 0.9) * reach
            middle = origin + across * offset + direction * shift
            curves.append(np.stack([middle - direction * length, middle + direction * length]))
            values.append(int(255 * gain * rng.uniform(0.35, 1.0)))
        for curve, value in zip(curves, values):
            _polylines(local, [curve], value, 1.2 * unit)
        local[geometry.cell_id[box[0] : box[1], box[2] : box[3]] != cell.index] = 0
        region = canvas[box[0] : box[1], box[2] : box[3]]
        np.maximum(region, local, out=region)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.6 * unit, 0.5)).astype(np.float32) / 255.0


def _green_focal_adhesions(geometry, rng, context):  # 13
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        count = int(rng.integers(12, 29))
        angles = rng.uniform(0.0, _TWO_PI, count)
        neighbours = cell.neighbour[np.rint(np.mod(angles, _TWO_PI) / _TWO_PI * _ANGLES).astype(int) % _ANGLES]
        angles = angles[neighbours != -2]  # not where the frame cuts the cell
        if angles.size == 0:
            continue
        outer = cell.polar_points(angles, rng.uniform(0.9, 0.97, angles.size))
        inward = cell.nucleus_center - outer
        inward /= np.maximum(np.hypot(inward[:, 0], inward[:, 1]), 1e-6)[:, None]
        lengths = rng.uniform(4.0, 9.0, angles.size) * unit
        curves = [np.stack([point, point + direction * length]) for point, direction, length in
                  zip(outer, inward, lengths)]
        _polylines(canvas, curves, int(255 * gain), 2.5 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.6 * unit, 0.5)).astype(np.float32) / 255.0


def _green_microtubules(geometry, rng, context):  # 14
    gains = geometry.per_cell(_cell_gains(geometry, rng, 0.7, 1.0))
    return context["filaments"].astype(np.float32) * np.float32(1.0 / 140.0) * gains


def _green_microtubule_ends(geometry, rng, context):  # 15
    tips = context["tips"]
    if len(tips) == 0:
        return np.zeros((geometry.size, geometry.size), np.float32)
    keep = rng.random(len(tips)) < 0.85
    return _spots(geometry.size, tips[keep], rng.uniform(0.6, 1.0, int(keep.sum())), 1.0 * geometry.unit) * 1.2


def _green_cytokinetic_bridge(geometry, rng, context):  # 16
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    if geometry.bridge is not None:
        midpoint, direction, half = geometry.bridge
        _polylines(canvas, [np.stack([midpoint - direction * half, midpoint + direction * half])], 230,
                   3.0 * unit)
        _disc(canvas, midpoint, 3.0 * unit, 255)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.7 * unit, 0.5)).astype(np.float32) / 255.0


def _green_mitotic_spindle(geometry, rng, context):  # 17
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell in geometry.cells:
        if cell.kind != "mitotic":
            continue
        axis = np.array([math.cos(cell.spindle_angle), math.sin(cell.spindle_angle)])
        across = np.array([-axis[1], axis[0]])
        plate_half = cell.nucleus_axes[1] * 0.9
        for sign in (1.0, -1.0):
            pole = cell.center + sign * axis * cell.radius * 0.6
            cone = np.stack([pole, cell.center + across * plate_half, cell.center - across * plate_half])
            cv2.fillPoly(canvas, [_fixed(cone).reshape(-1, 1, 2)], 120, cv2.LINE_AA, _SHIFT)
            _disc(canvas, pole, 3.0 * unit, 255)
        _draw_spindle(canvas, cell, rng, unit, value_range=(200, 255), count=10)
    return cv2.GaussianBlur(canvas, (0, 0), max(1.0 * unit, 0.5)).astype(np.float32) / 255.0


def _centrosome_points(geometry, rng, pair):
    points, amplitudes = [], []
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.7, 1.0)):
        if cell.kind == "mitotic":
            continue
        center = cell.beside_nucleus(cell.centrosome_angle + rng.normal(0.0, 0.2), rng.uniform(2.0, 4.0) *
                                     geometry.unit)
        points.append(center)
        amplitudes.append(gain)
        if pair:
            angle = rng.uniform(0.0, _TWO_PI)
            points.append(center + 5.5 * geometry.unit * np.array([math.cos(angle), math.sin(angle)]))
            amplitudes.append(gain * rng.uniform(0.8, 1.0))
    return points, amplitudes


def _green_mtoc(geometry, rng, context):  # 18
    points, amplitudes = _centrosome_points(geometry, rng, pair=False)
    return _spots(geometry.size, points, amplitudes, 2.6 * geometry.unit)


def _green_centrosome(geometry, rng, context):  # 19
    points, amplitudes = _centrosome_points(geometry, rng, pair=True)
    return _spots(geometry.size, points, amplitudes, 1.6 * geometry.unit)


def _green_lipid_droplets(geometry, rng, context):  # 20
    return _dots_in_cytoplasm(geometry, rng, (10, 22), (2.5, 4.5), ring_share=1.0, thickness=1.3)


def _outline_curves(cell, wanted):
    """Runs of the cell's outline whose neighbour matches ``wanted`` (a predicate on neighbour ids)."""
    fine = np.linspace(0.0, _TWO_PI, _ANGLES * 4, endpoint=False)
    neighbours = cell.neighbour[np.rint(fine / _TWO_PI * _ANGLES).astype(int) % _ANGLES]
    selected = wanted(neighbours)
    points = cell.polar_points(fine, np.full(fine.size, 0.985))
    if selected.all():
        return [np.vstack([points, points[:1]])]
    curves = []
    start = int(np.argmin(selected))  # begin the walk on an unselected direction
    run = []
    for step in range(fine.size + 1):
        index = (start + step) % fine.size
        if selected[index]:
            run.append(points[index])
        elif run:
            if len(run) > 1:
                curves.append(np.array(run))
            run = []
    if len(run) > 1:
        curves.append(np.array(run))
    return curves


def _green_plasma_membrane(geometry, rng, context):  # 21
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        _polylines(canvas, _outline_curves(cell, lambda ids: ids != -2), int(200 * gain), 1.3 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.7 * unit, 0.5)).astype(np.float32) / 200.0


def _green_cell_junctions(geometry, rng, context):  # 22
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.7, 1.0)):
        _polylines(canvas, _outline_curves(cell, lambda ids: ids >= 0), int(255 * gain), 2.5 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.8 * unit, 0.5)).astype(np.float32) / 255.0


def _green_mitochondria(geometry, rng, context):  # 23
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        count = max(int(rng.uniform(40, 70) * (cell.radius / (100.0 * unit)) ** 2), 3)
        starts, _ = cell.cytoplasm_points(count, rng, 0.05, 0.85, power=0.8)
        angles = rng.uniform(0.0, _TWO_PI, count)
        lengths = rng.uniform(5.0, 13.0, count) * unit
        ends = starts + lengths[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        curves = _bent_curves(starts, ends, 0.15 * lengths, rng, points=4)
        _polylines(canvas, list(curves), int(230 * gain), 1.5 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.7 * unit, 0.5)).astype(np.float32) / 230.0


def _green_aggresome(geometry, rng, context):  # 24
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.7, 1.0, share=0.7)):
        if gain == 0.0 or cell.kind == "mitotic":
            continue
        radius = max(rng.uniform(0.3, 0.45) * cell.mean_nucleus_radius, 3.0 * unit)
        center = cell.beside_nucleus(cell.centrosome_angle, radius * 0.8)
        axes = (radius * rng.uniform(1.0, 1.3), radius * rng.uniform(0.75, 1.0))
        cv2.ellipse(canvas, tuple(int(v) for v in _fixed(center)),
                    tuple(max(int(round(a * _ONE)), 1) for a in axes), math.degrees(cell.centrosome_angle), 0, 360,
                    int(255 * gain), -1, cv2.LINE_AA, _SHIFT)
    return cv2.GaussianBlur(canvas, (0, 0), max(1.5 * unit, 0.5)).astype(np.float32) / 255.0


def _green_cytosol(geometry, rng, context):  # 25
    texture = 1.0 + 0.1 * _smooth_noise(rng, geometry.size, 14.0 * geometry.unit)
    fade = 1.0 - 0.35 * np.clip(geometry.cell_distance, 0.0, 1.0)
    return geometry.cytoplasm_mask() * fade * texture * geometry.per_cell(_cell_gains(geometry, rng, 0.5, 1.0)) * 0.6


def _green_cytoplasmic_bodies(geometry, rng, context):  # 26
    return _dots_in_cytoplasm(geometry, rng, (2, 5), (3.5, 6.0), share=0.8, low=0.1, high=0.85)


def _green_rods_and_rings(geometry, rng, context):  # 27
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.7, 1.0, share=0.85)):
        if gain == 0.0:
            continue
        count = int(rng.integers(2, 7))
        points, _ = cell.cytoplasm_points(count, rng, 0.1, 0.85)
        for point in points:
            if rng.random() < 0.55:
                angle = rng.uniform(0.0, _TWO_PI)
                half = rng.uniform(4.0, 8.0) * unit * np.array([math.cos(angle), math.sin(angle)])
                _polylines(canvas, [np.stack([point - half, point + half])], int(255 * gain), 2.5 * unit)
            else:
                _disc(canvas, point, rng.uniform(3.0, 5.0) * unit, int(255 * gain), 1.8 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.6 * unit, 0.5)).astype(np.float32) / 255.0


GREEN_PATTERNS = (
    _green_nucleoplasm,
    _green_nuclear_membrane,
    _green_nucleoli,
    _green_fibrillar_center,
    _green_speckles,
    _green_nuclear_bodies,
    _green_endoplasmic_reticulum,
    _green_golgi,
    _green_peroxisomes,
    _green_endosomes,
    _green_lysosomes,
    _green_intermediate_filaments,
    _green_actin,
    _green_focal_adhesions,
    _green_microtubules,
    _green_microtubule_ends,
    _green_cytokinetic_bridge,
    _green_mitotic_spindle,
    _green_mtoc,
    _green_centrosome,
    _green_lipid_droplets,
    _green_plasma_membrane,
    _green_cell_junctions,
    _green_mitochondria,
    _green_aggresome,
    _green_cytosol,
    _green_cytoplasmic_bodies,
    _green_rods_and_rings,
)


# --- one sample -------------------------------------------------------------------------------------


def render_sample(labels, image_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Render one field of view: {"red", "green", "blue", "yellow"} -> (image_size, image_size) uint8.

    Red, blue and yellow depend only on ``rng``; green is the overlay of one pattern per label (see
    SYNTHETIC.md). Labels 16 and 17 also make sure the field holds a dividing cell, which other
    fields get by chance. Raises ValueError for a label outside 0..27 or image_size < 32.
    """
    image_size = _check_int("image_size", image_size, minimum=MIN_IMAGE_SIZE)
    label_list = sorted({int(label) for label in labels})
    if not label_list or not all(0 <= label < labels_module.NUM_CLASSES for label in label_list):
        raise ValueError(f"labels {list(labels)!r}: expected one or more labels in 0..{labels_module.NUM_CLASSES - 1}")
    streams = [np.random.default_rng(seed) for seed in rng.integers(0, 2**63, size=6)]
    geometry_rng, red_rng, yellow_rng, blue_rng, green_rng, finish_rng = streams
    geometry = _build_field(label_list, image_size, geometry_rng)
    red, filaments, tips = _draw_red(geometry, red_rng)
    yellow, network = _draw_yellow(geometry, yellow_rng)
    blue = _draw_blue(geometry, blue_rng)
    context = {"filaments": filaments, "tips": tips, "network": network}
    label_seeds = green_rng.integers(0, 2**63, size=labels_module.NUM_CLASSES)  # same stream per class
    green = np.float32(green_rng.uniform(3.0, 7.0)) * geometry.cytoplasm_mask()  # faint autofluorescence
    for label in label_list:
        pattern_rng = np.random.default_rng(label_seeds[label])
        brightness = np.float32(pattern_rng.uniform(140.0, 220.0))
        green += GREEN_PATTERNS[label](geometry, pattern_rng, context) * brightness
    return _finish({"red": red, "green": green, "blue": blue, "yellow": yellow}, geometry, finish_rng)


def _finish(channels, geometry, rng):
    """Microscope blur, uneven illumination, a dark offset and camera noise; then 8-bit."""
    size, unit = geometry.size, geometry.unit
    illumination = 1.0 + 0.13 * _smooth_noise(rng, size, size / 2.5)
    sigma = 0.45 + 0.35 * unit
    offsets = rng.uniform(1.5, 4.0, len(COLORS)).astype(np.float32)
    # camera noise: the sum of two uniform bytes is a (discrete) triangle, close enough to a Gaussian
    # and several times cheaper to draw; scaled to unit variance, growing with the signal
    random_bytes = rng.integers(0, 256, size=(2, len(COLORS), size, size), dtype=np.uint8)
    unit_scale = np.float32(1.0 / math.sqrt(2 * (256**2 - 1) / 12))
    result = {}
    for channel, color in enumerate(COLORS):
        signal = cv2.GaussianBlur(channels[color], (0, 0), sigma)
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


# --- the dataset ------------------------------------------------------------------------------------


def dataset_name(n_train: int, n_test: int, image_size: int, seed: int, min_per_class: int = 2) -> str:
    """The folder name ensure_dataset uses for these arguments (and this generator version)."""
    return f"synthetic-train{n_train}-test{n_test}-{image_size}px-seed{seed}-min{min_per_class}-v{GENERATOR_VERSION}"


def make_ids(count: int, seed: int) -> list[str]:
    """``count`` unique UUID-shaped Ids like the real ones (xxxxxxxx-xxxx-11e8-b2xx-xxxxxxxxxxxx)."""
    rng = np.random.default_rng([seed, _ID_DRAWS, 0])
    ids, seen = [], set()
    while len(ids) < count:
        words = rng.integers(0, 2**32, size=(count - len(ids), 4), dtype=np.uint64)
        for first, second, third, fourth in words.tolist():
            image_id = (f"{first:08x}-{second >> 16:04x}-11e8-b2{second & 0xFF:02x}-"
                        f"{third & 0xFFFF:04x}{fourth:08x}")
            if image_id not in seen:
                seen.add(image_id)
                ids.append(image_id)
    return ids


def generate(out_dir, n_train: int, n_test: int, image_size: int = 512, seed: int = 0, min_per_class: int = 2,
             workers: int | None = None, progress: bool = True) -> Path:
    """Write the synthetic dataset in the Kaggle layout into ``out_dir``; returns its Path.

    Files: train.csv (Id,Target), sample_submission.csv (Id,Predicted), test_labels.csv (Id,Target;
    for evaluation only), train/<Id>_<color>.png and test/<Id>_<color>.png (8-bit grayscale). The
    same arguments give byte-identical files whatever ``workers`` (processes; default os.cpu_count()).
    Train and test label sets are drawn alike (real statistics, each split with the
    ``min_per_class`` floor). Everything is written into a hidden sibling folder that is renamed to
    ``out_dir`` at the end, so a killed run never leaves a half dataset there. Raises ValueError for bad arguments or an ``out_dir`` that exists and is not empty.
    """
    n_train = _check_int("n_train", n_train, minimum=1)
    n_test = _check_int("n_test", n_test, minimum=1)
    image_size = _check_int("image_size", image_size, minimum=MIN_IMAGE_SIZE)
    seed = _check_int("seed", seed, minimum=0)
    min_per_class = _check_int("min_per_class", min_per_class, minimum=0)
    workers = (os.cpu_count() or 1) if workers is None else _check_int("workers", workers, minimum=1)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"{out_dir}: already exists and is not an empty folder; choose a new out_dir")

    ids = make_ids(n_train + n_test, seed)
    splits = {}
    for split_index, (split, split_ids, count) in enumerate(
        (("train", ids[:n_train], n_train), ("test", ids[n_train:], n_test))
    ):
        label_sets = sample_label_sets(count, np.random.default_rng([seed, _LABEL_DRAWS, split_index]), min_per_class)
        splits[split] = list(zip(sorted(split_ids), label_sets))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    temporary.mkdir()  # (not tempfile.mkdtemp: its 0700 mode would stay on the dataset)
    try:
        _write_csv(temporary / "train.csv", ("Id", "Target"),
                   [(image_id, labels_module.format_target(label_set)) for image_id, label_set in splits["train"]])
        _write_csv(temporary / "test_labels.csv", ("Id", "Target"),
                   [(image_id, labels_module.format_target(label_set)) for image_id, label_set in splits["test"]])
        _write_csv(temporary / "sample_submission.csv", ("Id", "Predicted"),
                   [(image_id, "0") for image_id, _ in splits["test"]])
        tasks = []
        for split_index, split in enumerate(SPLITS):
            (temporary / split).mkdir()
            rows = [(position, image_id, label_set) for position, (image_id, label_set) in enumerate(splits[split])]
            chunk = max(1, min(16, len(rows) // (4 * workers) or 1))
            for start in range(0, len(rows), chunk):
                tasks.append((str(temporary / split), split_index, seed, image_size, rows[start : start + chunk]))
        _run_tasks(tasks, workers, progress, total=n_train + n_test)
        try:
            os.rename(temporary, out_dir)  # replaces an empty folder; fails on a non-empty one
        except OSError:
            if out_dir.is_dir() and any(out_dir.iterdir()):
                raise ValueError(f"{out_dir}: another process wrote this folder meanwhile; not overwriting it") from None
            raise
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out_dir


def ensure_dataset(root, n_train: int, n_test: int, image_size: int, seed: int, min_per_class: int = 2) -> Path:
    """root/<dataset_name(...)>: generated on first use, reused afterwards (prints which)."""
    path = Path(root) / dataset_name(n_train, n_test, image_size, seed, min_per_class)
    if (path / "train.csv").is_file():
        print(f"synthetic dataset: reusing {path}")
        return path
    print(f"synthetic dataset: generating {path} ({n_train} train + {n_test} test images, {image_size} px)")
    try:
        return generate(path, n_train, n_test, image_size=image_size, seed=seed, min_per_class=min_per_class)
    except ValueError:
        if (path / "train.csv").is_file():  # another process finished it first
            return path
        raise


def _write_csv(path, header, rows):
    lines = [",".join(header)] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def _render_chunk(task) -> int:
    folder, split_index, seed, image_size, rows = task
    folder = Path(folder)
    parameters = list(PNG_OPTIONS)
    for position, image_id, label_set in rows:
        rng = np.random.default_rng([seed, _TRAIN_SAMPLES if split_index == 0 else _TEST_SAMPLES, position])
        for color, image in render_sample(label_set, image_size, rng).items():
            ok, encoded = cv2.imencode(".png", image, parameters)
            if not ok:
                raise OSError(f"{folder / image_id}_{color}.png: PNG encoding failed")
            (folder / f"{image_id}_{color}.png").write_bytes(encoded.tobytes())
    return len(rows)


def _worker_start():
    cv2.setNumThreads(1)


def _run_tasks(tasks, workers, progress, total):
    from tqdm import tqdm

    with tqdm(total=total, desc="synthetic images", unit="image", disable=not progress) as bar:
        if workers == 1 or len(tasks) == 1:
            for task in tasks:
                bar.update(_render_chunk(task))
            return
        # not "fork": the caller (a notebook) may already run TensorFlow's threads, which fork copies badly
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context,
                                                    initializer=_worker_start) as pool:
            futures = [pool.submit(_render_chunk, task) for task in tasks]
            try:
                for future in concurrent.futures.as_completed(futures):
                    bar.update(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)
