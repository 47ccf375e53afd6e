"""Cell geometry: irregular cells with one nucleus each, placed in a field, mitotic and daughter cells, masks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from hpa_utils.dataset.synthetic.field import DIVIDING_CHANCE

ANGLES = 64  # directions of each cell's polar outline (from the nucleus centre)

TWO_PI = 2.0 * math.pi


@dataclass
class Cell:
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
        return np.interp(np.mod(angles, TWO_PI), _ANGLE_GRID, table, period=TWO_PI)

    def cytoplasm_points(self, count, rng, low=0.06, high=0.94, power=0.5):
        """``count`` points between nucleus border (t=0) and cell edge (t=1); power 0.5 spreads them about evenly."""
        angles = rng.uniform(0.0, TWO_PI, count)
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
        angles = rng.uniform(0.0, TWO_PI, count)
        fraction = high * np.sqrt(rng.random(count))
        radius = self.radii_at(angles, self.nucleus_radius) * fraction
        return self.nucleus_center + np.stack([np.cos(angles), np.sin(angles)], axis=-1) * radius[:, None]

    def beside_nucleus(self, angle, gap):
        """The point ``gap`` pixels outside the nucleus border in direction ``angle``."""
        radius = float(self.radii_at(np.array([angle]), self.nucleus_radius)[0]) + gap
        return self.nucleus_center + radius * np.array([math.cos(angle), math.sin(angle)])


_ANGLE_GRID = np.linspace(0.0, TWO_PI, ANGLES, endpoint=False)


def _random_harmonics(rng, largest):
    orders = np.arange(2, 5, dtype=np.float64)
    return np.stack([orders, rng.uniform(0.0, largest, 3) / orders * 2.0, rng.uniform(0.0, TWO_PI, 3)], axis=1)


def _new_cell(rng, center, radius, unit, nucleus_scale=1.0):
    elongation = rng.uniform(1.0, 2.4)
    axes = (radius * math.sqrt(elongation), radius / math.sqrt(elongation))
    angle = rng.uniform(0.0, math.pi)
    harmonics = _random_harmonics(rng, 0.15)
    offset_angle = rng.uniform(0.0, TWO_PI)
    offset = rng.uniform(0.0, 0.22) * radius
    nucleus_center = np.asarray(center) + offset * np.array([math.cos(offset_angle), math.sin(offset_angle)])
    nucleus_size = rng.uniform(0.36, 0.5) * radius * nucleus_scale
    nucleus_elongation = rng.uniform(1.0, 1.5)
    nucleus_axes = (nucleus_size * math.sqrt(nucleus_elongation), nucleus_size / math.sqrt(nucleus_elongation))
    nucleus_angle = angle + rng.normal(0.0, 0.35)
    cell = Cell(
        center=np.asarray(center, dtype=np.float64),
        axes=axes,
        angle=angle,
        harmonics=harmonics,
        nucleus_center=nucleus_center,
        nucleus_axes=nucleus_axes,
        nucleus_angle=nucleus_angle,
        nucleus_harmonics=_random_harmonics(rng, 0.04),
        centrosome_angle=rng.uniform(0.0, TWO_PI),
    )
    for _ in range(rng.integers(1, 5)):
        where = rng.uniform(0.0, TWO_PI)
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
            Cell(
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
class Geometry:
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


def _place_cells(rng, size, unit, field_of_view):
    """``field_of_view.cell_count`` cells of varying size and shape: most grown onto colonies so that neighbours touch,
    some starting a colony of their own; cells near the frame run over its edge, as in a real field."""
    count = field_of_view.cell_count
    radii = field_of_view.mean_cell_radius * size * rng.uniform(0.7, 1.3, count)
    centers = np.empty((count, 2))
    centers[0] = rng.uniform(0.2, 0.8, 2) * size
    for index in range(1, count):
        radius = radii[index]
        placed = None
        if rng.random() < 0.8:
            anchors = rng.integers(index, size=30)
            directions = rng.uniform(0.0, TWO_PI, 30)
            distances = (radius + radii[anchors]) * rng.uniform(0.7, 0.92, 30)
            candidates = centers[anchors] + distances[:, None] * np.stack([np.cos(directions), np.sin(directions)], 1)
            gaps = np.hypot(*(candidates[:, None, :] - centers[None, :index, :]).transpose(2, 0, 1))
            clear = np.all(gaps > 0.78 * (radius + radii[None, :index]), axis=1)
            inside = np.all((candidates > -0.02 * size) & (candidates < 1.02 * size), axis=1)
            good = np.flatnonzero(clear & inside)
            if good.size:
                placed = candidates[good[0]]
        centers[index] = placed if placed is not None else rng.uniform(0.0, 1.0, 2) * size
    scale = field_of_view.nucleus_scale
    return [_new_cell(rng, center, radius, unit, scale) for center, radius in zip(centers, radii)]


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
    for _order, amplitude, phase in harmonics:  # orders 2, 3, 4 in sequence
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


def bounding_box(center, reach, size):
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
        box = bounding_box(cell.center, cell.reach(), size)
        if box[0] >= box[1] or box[2] >= box[3]:
            continue
        distance = _normalised_distance(box, cell.center, cell.axes, cell.angle, cell.harmonics)
        region = cell_distance[box[0] : box[1], box[2] : box[3]]
        take = distance < np.minimum(region, 1.0)
        region[take] = distance[take]
        cell_id[box[0] : box[1], box[2] : box[3]][take] = index
    if bridge is not None:  # the gap between two daughter cells belongs to no other cell
        midpoint, _, half = bridge
        box = bounding_box(midpoint, half * 1.6, size)
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
        box = bounding_box(cell.nucleus_center, reach, size)
        if box[0] >= box[1] or box[2] >= box[3]:
            continue
        distance = _normalised_distance(
            box, cell.nucleus_center, cell.nucleus_axes, cell.nucleus_angle, cell.nucleus_harmonics
        )
        own = cell_id[box[0] : box[1], box[2] : box[3]] == cell.index
        nucleus_distance[box[0] : box[1], box[2] : box[3]][own] = distance[own]
    _measure_outlines(cells, cell_id, size, unit)
    return Geometry(size, unit, cells, cell_id, cell_distance, nucleus_distance, bridge)


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
        rows = np.arange(ANGLES)
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


def build_geometry(labels, size, rng, field_of_view):
    """The cells of one field of view (a ``field.Field``), dividing ones where labels or chance ask, rasterised."""
    unit = size / 512.0
    cells = _place_cells(rng, size, unit, field_of_view)
    # Dividing cells appear in some fields whatever the labels (as in the real data); the labels
    # 16 and 17 make sure the field has one, because their green pattern lives in it.
    mitotic_chance, mitotic_pick, spindle_angle = rng.random(), rng.random(), rng.uniform(0.0, math.pi)
    dividing_chance, dividing_pick = rng.random(), rng.random()
    dividing_values = (rng.uniform(0.0, math.pi), *rng.uniform(0.5, 0.6, 2), *rng.uniform(0.42, 0.52, 2))
    bridge = None
    mitotic_index = None
    if 17 in labels or mitotic_chance < DIVIDING_CHANCE:
        choices = _central_cells(cells, size, exclude=None)
        mitotic_index = choices[int(mitotic_pick * len(choices))]
        _make_mitotic(cells[mitotic_index], spindle_angle)
    if 16 in labels or dividing_chance < DIVIDING_CHANCE:
        choices = _central_cells(cells, size, exclude=mitotic_index)
        parent = choices[int(dividing_pick * len(choices))]
        daughters, midpoint, direction = _make_daughters(cells[parent], dividing_values, unit)
        gap = np.hypot(*(daughters[0].center - daughters[1].center)) - daughters[0].axes[0] - daughters[1].axes[0]
        bridge = (midpoint, direction, gap / 2.0 + 3.0 * unit)
        cells[parent : parent + 1] = daughters
    return _rasterise(cells, size, unit, bridge)


def cell_gains(geometry, rng, low=0.45, high=1.0, share=1.0):
    """A brightness per cell; a cell shows the pattern with probability ``share``."""
    gains = rng.uniform(low, high, len(geometry.cells))
    gains[rng.random(len(geometry.cells)) > share] = 0.0
    return gains
