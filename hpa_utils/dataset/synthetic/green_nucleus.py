"""Green patterns inside the nucleus: classes 0-5 (nucleoplasm, membrane, nucleoli, fibrillar centres, speckles)."""

from __future__ import annotations

import cv2
import numpy as np

from hpa_utils.dataset.synthetic.cells import TWO_PI, cell_gains
from hpa_utils.dataset.synthetic.drawing import (
    ONE,
    SHIFT,
    disc,
    fixed,
    smooth_noise,
    spots,
)


def green_nucleoplasm(geometry, rng, context):  # 0
    texture = 1.0 + 0.08 * smooth_noise(rng, geometry.size, 10.0 * geometry.unit)
    return geometry.nucleus_mask() * texture * geometry.per_cell(cell_gains(geometry, rng, 0.6, 1.0)) * 0.75


def green_nuclear_membrane(geometry, rng, context):  # 1
    width = np.float32(max(0.05, 1.4 * geometry.unit / 30.0))
    ring = np.exp(-np.square((geometry.nucleus_distance - 0.97) / width))
    return ring * geometry.per_cell(cell_gains(geometry, rng, 0.6, 1.0))


def green_nucleoli(geometry, rng, context):  # 2
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.6, 1.0)):
        for x, y, radius in cell.nucleoli:
            disc(canvas, (x, y), radius * 1.05, int(255 * gain))
    return cv2.GaussianBlur(canvas, (0, 0), max(0.8 * geometry.unit, 0.5)).astype(np.float32) / 255.0


def green_fibrillar_center(geometry, rng, context):  # 3
    points, amplitudes = [], []
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.6, 1.0)):
        for x, y, radius in cell.nucleoli:
            count = int(rng.integers(4, 11))
            angles = rng.uniform(0.0, TWO_PI, count)
            distance = radius * 0.8 * np.sqrt(rng.random(count))
            points.append(np.stack([x + distance * np.cos(angles), y + distance * np.sin(angles)], 1))
            amplitudes.append(np.full(count, gain))
    if not points:
        return np.zeros((geometry.size, geometry.size), np.float32)
    glow = green_nucleoli(geometry, rng, context) * 0.12  # the nucleoli around the dots, faintly
    return glow + spots(geometry.size, np.concatenate(points), np.concatenate(amplitudes), 0.8 * geometry.unit) * 1.6


def green_speckles(geometry, rng, context):  # 4
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.6, 1.0)):
        count = int(rng.integers(10, 31))
        for point in cell.nucleus_points(count, rng, high=0.85):
            axes = rng.uniform(1.5, 3.5, 2) * unit
            cv2.ellipse(
                canvas,
                tuple(int(v) for v in fixed(point)),
                tuple(max(int(round(a * ONE)), 1) for a in axes),
                float(rng.uniform(0, 180)),
                0,
                360,
                int(255 * gain * rng.uniform(0.6, 1.0)),
                -1,
                cv2.LINE_AA,
                SHIFT,
            )
    speckles = cv2.GaussianBlur(canvas, (0, 0), max(0.7 * unit, 0.5)).astype(np.float32) / 255.0
    return speckles + 0.12 * geometry.nucleus_mask()


def green_nuclear_bodies(geometry, rng, context):  # 5
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.7, 1.0)):
        for point in cell.nucleus_points(int(rng.integers(1, 7)), rng, high=0.8):
            disc(canvas, point, rng.uniform(2.0, 3.4) * unit, int(255 * gain))
    return canvas.astype(np.float32) / 255.0
