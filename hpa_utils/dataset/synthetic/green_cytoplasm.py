"""Green patterns in the cytoplasm: ER, Golgi, dot-like organelles, droplets, mitochondria, aggresome, cytosol, rods."""

from __future__ import annotations

import math

import cv2
import numpy as np

from hpa_utils.dataset.synthetic.cells import TWO_PI, cell_gains
from hpa_utils.dataset.synthetic.drawing import (
    ONE,
    SHIFT,
    bent_curves,
    disc,
    fixed,
    polylines,
    smooth_noise,
)


def green_endoplasmic_reticulum(geometry, rng, context):  # 6
    return context["network"] * geometry.per_cell(cell_gains(geometry, rng, 0.6, 1.0)) * 1.2


def green_golgi(geometry, rng, context):  # 7
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.6, 1.0)):
        if cell.kind == "mitotic":
            continue
        span = rng.uniform(0.35, 0.75)
        angles = cell.centrosome_angle + np.linspace(-span, span, 9)
        gap = rng.uniform(2.0, 5.0) * unit
        radii = cell.radii_at(angles, cell.nucleus_radius) + gap
        arc = cell.nucleus_center + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
        thickness = rng.uniform(5.0, 9.0) * unit
        polylines(canvas, [arc], int(255 * gain), thickness)
        for point in arc[1:-1:2]:
            disc(canvas, point + rng.normal(0.0, 2.0 * unit, 2), rng.uniform(3.0, 5.0) * unit, int(255 * gain))
    return cv2.GaussianBlur(canvas, (0, 0), max(1.0 * unit, 0.5)).astype(np.float32) / 255.0


def _dots_in_cytoplasm(
    geometry, rng, per_100_pixels, radius_range, ring_share=0.0, placement=(0.06, 0.94, 0.5), share=1.0, thickness=1.0
):
    """Round dots (some hollow) over each cell's cytoplasm; ``per_100_pixels`` scales with the cell radius;
    ``placement``: (low, high, power) of ``cell.cytoplasm_points``, how far from the nucleus they lie."""
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.55, 1.0, share)):
        if gain == 0.0:
            continue
        count = max(int(round(rng.uniform(*per_100_pixels) * (cell.radius / (100.0 * unit)) ** 2)), 1)
        points, _ = cell.cytoplasm_points(count, rng, *placement)
        radii = rng.uniform(*radius_range, count) * unit
        hollow = rng.random(count) < ring_share
        values = (255 * gain * rng.uniform(0.6, 1.0, count)).astype(int)
        for point, radius, is_ring, value in zip(points, radii, hollow, values):
            disc(canvas, point, radius, int(value), thickness * unit if is_ring else None)
    return canvas.astype(np.float32) / 255.0


def green_peroxisomes(geometry, rng, context):  # 8
    return _dots_in_cytoplasm(geometry, rng, (70, 110), (0.9, 1.6))


def green_endosomes(geometry, rng, context):  # 9
    return _dots_in_cytoplasm(geometry, rng, (22, 40), (2.0, 3.5), ring_share=0.35, placement=(0.06, 0.94, 0.7))


def green_lysosomes(geometry, rng, context):  # 10
    return _dots_in_cytoplasm(geometry, rng, (22, 40), (1.8, 3.2), ring_share=0.1, placement=(0.02, 0.45, 1.3))


def green_lipid_droplets(geometry, rng, context):  # 20
    return _dots_in_cytoplasm(geometry, rng, (10, 22), (2.5, 4.5), ring_share=1.0, thickness=1.3)


def green_mitochondria(geometry, rng, context):  # 23
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.6, 1.0)):
        count = max(int(rng.uniform(40, 70) * (cell.radius / (100.0 * unit)) ** 2), 3)
        starts, _ = cell.cytoplasm_points(count, rng, 0.05, 0.85, power=0.8)
        angles = rng.uniform(0.0, TWO_PI, count)
        lengths = rng.uniform(5.0, 13.0, count) * unit
        ends = starts + lengths[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        curves = bent_curves(starts, ends, 0.15 * lengths, rng, points=4)
        polylines(canvas, list(curves), int(230 * gain), 1.5 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.7 * unit, 0.5)).astype(np.float32) / 230.0


def green_aggresome(geometry, rng, context):  # 24
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.7, 1.0, share=0.7)):
        if gain == 0.0 or cell.kind == "mitotic":
            continue
        radius = max(rng.uniform(0.3, 0.45) * cell.mean_nucleus_radius, 3.0 * unit)
        center = cell.beside_nucleus(cell.centrosome_angle, radius * 0.8)
        axes = (radius * rng.uniform(1.0, 1.3), radius * rng.uniform(0.75, 1.0))
        cv2.ellipse(
            canvas,
            tuple(int(v) for v in fixed(center)),
            tuple(max(int(round(a * ONE)), 1) for a in axes),
            math.degrees(cell.centrosome_angle),
            0,
            360,
            int(255 * gain),
            -1,
            cv2.LINE_AA,
            SHIFT,
        )
    return cv2.GaussianBlur(canvas, (0, 0), max(1.5 * unit, 0.5)).astype(np.float32) / 255.0


def green_cytosol(geometry, rng, context):  # 25
    texture = 1.0 + 0.1 * smooth_noise(rng, geometry.size, 14.0 * geometry.unit)
    fade = 1.0 - 0.35 * np.clip(geometry.cell_distance, 0.0, 1.0)
    return geometry.cytoplasm_mask() * fade * texture * geometry.per_cell(cell_gains(geometry, rng, 0.5, 1.0)) * 0.6


def green_cytoplasmic_bodies(geometry, rng, context):  # 26
    return _dots_in_cytoplasm(geometry, rng, (2, 5), (3.5, 6.0), share=0.8, placement=(0.1, 0.85, 0.5))


def green_rods_and_rings(geometry, rng, context):  # 27
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.7, 1.0, share=0.85)):
        if gain == 0.0:
            continue
        count = int(rng.integers(2, 7))
        points, _ = cell.cytoplasm_points(count, rng, 0.1, 0.85)
        for point in points:
            if rng.random() < 0.55:
                angle = rng.uniform(0.0, TWO_PI)
                half = rng.uniform(4.0, 8.0) * unit * np.array([math.cos(angle), math.sin(angle)])
                polylines(canvas, [np.stack([point - half, point + half])], int(255 * gain), 2.5 * unit)
            else:
                disc(canvas, point, rng.uniform(3.0, 5.0) * unit, int(255 * gain), 1.8 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.6 * unit, 0.5)).astype(np.float32) / 255.0
