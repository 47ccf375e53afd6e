"""The three landmark stains: red microtubules, yellow endoplasmic reticulum, blue nuclei."""

from __future__ import annotations

import math

import cv2
import numpy as np

from hpa_utils.dataset.synthetic.cells import TWO_PI
from hpa_utils.dataset.synthetic.drawing import bent_curves, disc, polylines, polylines_graded, smooth_noise


def draw_red(geometry, rng):
    """Microtubules: fine filaments from around the nucleus to the cell edge. Returns (image, filaments, tips)."""
    size, unit = geometry.size, geometry.unit
    filaments = np.zeros((size, size), dtype=np.uint8)
    tips, all_curves, all_values = [], [], []
    for cell in geometry.cells:
        if cell.kind == "mitotic":
            draw_spindle(filaments, cell, rng, unit, value_range=(70, 130), count=14)
            continue
        perimeter = float(np.mean(cell.edge_radius)) * TWO_PI
        count = int(np.clip(perimeter / (9.0 * unit), 12, 110))
        angles = rng.uniform(0.0, TWO_PI, count)
        starts = cell.polar_points(angles, rng.uniform(-0.35, 0.3, count))
        ends = cell.polar_points(angles + rng.normal(0.0, 0.3, count), rng.uniform(0.8, 0.97, count))
        lengths = np.hypot(*(ends - starts).T)
        curves = bent_curves(starts, ends, 0.06 * lengths, rng)
        all_curves.append(curves)
        all_values.append(rng.choice(np.arange(60, 200, 20), count))
        tips.append(ends)
    if all_curves:  # one cv2 call per brightness for the whole field
        polylines_graded(filaments, np.concatenate(all_curves), np.concatenate(all_values), unit)
    if geometry.bridge is not None:
        midpoint, direction, half = geometry.bridge
        polylines(
            filaments,
            [np.stack([midpoint - direction * half * 1.6, midpoint + direction * half * 1.6])],
            90,
            1.5 * unit,
        )
    tips = np.concatenate(tips) if tips else np.zeros((0, 2))
    # microtubules are densest around the nucleus, where they leave the centrosome: a perinuclear glow
    perinuclear = np.clip(1.2 - geometry.cell_distance, 0.0, 1.0)
    perinuclear *= perinuclear
    diffuse = geometry.cytoplasm_mask() * geometry.per_cell(rng.uniform(5.0, 12.0, len(geometry.cells)))
    diffuse *= 1.0 + 4.5 * perinuclear
    diffuse += geometry.nucleus_mask() * geometry.per_cell(rng.uniform(5.0, 10.0, len(geometry.cells)))
    image = diffuse + filaments.astype(np.float32) * geometry.cell_mask() * np.float32(rng.uniform(0.8, 1.1))
    return image, filaments, tips


def draw_spindle(canvas, cell, rng, unit, value_range, count):
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
    polylines(canvas, curves, int(rng.integers(*value_range)), unit)


def draw_yellow(geometry, rng):
    """Endoplasmic reticulum: a reticular network, brightest around the nucleus. Returns (image, network)."""
    size, unit = geometry.size, geometry.unit
    noise = smooth_noise(rng, size, 22.0 * unit) + 0.6 * smooth_noise(rng, size, 9.0 * unit)
    noise *= np.float32(1.0 / 0.32)
    network = np.exp(-np.square(noise, out=noise), out=noise)
    perinuclear = np.clip(1.25 - geometry.cell_distance, 0.0, 1.0)
    perinuclear *= np.sqrt(perinuclear)
    envelope = (geometry.nucleus_distance - np.float32(1.02)) * np.float32(1.0 / 0.09)
    envelope = np.exp(-np.square(envelope, out=envelope), out=envelope)
    weight = geometry.cell_mask() * (perinuclear * (1.0 - 0.8 * geometry.nucleus_mask()) + 0.7 * envelope)
    weight *= geometry.per_cell(rng.uniform(0.7, 1.0, len(geometry.cells)))
    network *= weight
    image = network * np.float32(rng.uniform(115, 170)) + weight * np.float32(rng.uniform(26, 40))
    return image, network


def draw_blue(geometry, rng):
    """Nuclei: bright textured ovals with darker nucleoli; condensed chromosomes in mitotic cells."""
    size, unit = geometry.size, geometry.unit
    texture = smooth_noise(rng, size, 7.0 * unit)
    cells = geometry.cells
    brightness = rng.uniform(90.0, 170.0, len(cells))
    brightness *= np.array([1.5 if cell.kind == "mitotic" else 1.0 for cell in cells])
    profile = 1.0 - 0.3 * np.square(np.minimum(geometry.nucleus_distance, 1.0))
    image = geometry.nucleus_mask() * profile * (1.0 + 0.18 * texture) * geometry.per_cell(brightness)
    holes = np.zeros((size, size), dtype=np.uint8)
    for cell in cells:
        for x, y, radius in cell.nucleoli:
            disc(holes, (x, y), radius, 255)
    if holes.any():
        holes = cv2.GaussianBlur(holes, (0, 0), max(unit, 0.5)).astype(np.float32) / np.float32(255 / 0.45)
        image *= 1.0 - holes
    return image
