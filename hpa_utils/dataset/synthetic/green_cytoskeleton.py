"""Green patterns on the cytoskeleton, in mitosis and at the cell edge: filaments, spindle, centrosome, membrane."""

from __future__ import annotations

import math

import cv2
import numpy as np

from hpa_utils.dataset.synthetic.cells import ANGLES, TWO_PI, bounding_box, cell_gains
from hpa_utils.dataset.synthetic.drawing import (
    SHIFT,
    disc,
    fixed,
    polylines,
    polylines_graded,
    spots,
)
from hpa_utils.dataset.synthetic.stains import draw_spindle


def green_intermediate_filaments(geometry, rng, context):  # 11
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.6, 1.0)):
        if cell.kind == "mitotic":
            continue
        count = int(rng.integers(8, 15))
        steps = np.linspace(0.0, 1.0, 24)[None, :]
        spans = rng.uniform(0.8, 2.6, (count, 1)) * rng.choice([-1.0, 1.0], (count, 1))
        angles = rng.uniform(0.0, TWO_PI, (count, 1)) + spans * steps
        levels = rng.uniform(0.03, 0.6, (count, 1)) + rng.uniform(-0.35, 0.35, (count, 1)) * steps
        waves = 0.07 * np.sin(rng.uniform(4.0, 14.0, (count, 1)) * steps + rng.uniform(0.0, TWO_PI, (count, 1)))
        curves = cell.polar_points(angles, np.clip(levels + waves, 0.02, 0.95))
        values = (200 * gain * rng.choice([0.45, 0.6, 0.75, 0.9, 1.0], count)).astype(int)
        polylines_graded(canvas, curves, values, 1.2 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.6 * unit, 0.5)).astype(np.float32) / 200.0


def green_actin(geometry, rng, context):  # 12
    unit = geometry.unit
    size = geometry.size
    canvas = np.zeros((size, size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.6, 1.0)):
        box = bounding_box(cell.center, cell.reach(), size)
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
            polylines(local, [curve], value, 1.2 * unit)
        local[geometry.cell_id[box[0] : box[1], box[2] : box[3]] != cell.index] = 0
        region = canvas[box[0] : box[1], box[2] : box[3]]
        np.maximum(region, local, out=region)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.6 * unit, 0.5)).astype(np.float32) / 255.0


def green_focal_adhesions(geometry, rng, context):  # 13
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.6, 1.0)):
        count = int(rng.integers(12, 29))
        angles = rng.uniform(0.0, TWO_PI, count)
        neighbours = cell.neighbour[np.rint(np.mod(angles, TWO_PI) / TWO_PI * ANGLES).astype(int) % ANGLES]
        angles = angles[neighbours != -2]  # not where the frame cuts the cell
        if angles.size == 0:
            continue
        outer = cell.polar_points(angles, rng.uniform(0.9, 0.97, angles.size))
        inward = cell.nucleus_center - outer
        inward /= np.maximum(np.hypot(inward[:, 0], inward[:, 1]), 1e-6)[:, None]
        lengths = rng.uniform(4.0, 9.0, angles.size) * unit
        curves = [
            np.stack([point, point + direction * length]) for point, direction, length in zip(outer, inward, lengths)
        ]
        polylines(canvas, curves, int(255 * gain), 2.5 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.6 * unit, 0.5)).astype(np.float32) / 255.0


def green_microtubules(geometry, rng, context):  # 14
    gains = geometry.per_cell(cell_gains(geometry, rng, 0.7, 1.0))
    return context["filaments"].astype(np.float32) * np.float32(1.0 / 140.0) * gains


def green_microtubule_ends(geometry, rng, context):  # 15
    tips = context["tips"]
    if len(tips) == 0:
        return np.zeros((geometry.size, geometry.size), np.float32)
    keep = rng.random(len(tips)) < 0.85
    return spots(geometry.size, tips[keep], rng.uniform(0.6, 1.0, int(keep.sum())), 1.0 * geometry.unit) * 1.2


def green_cytokinetic_bridge(geometry, rng, context):  # 16
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    if geometry.bridge is not None:
        midpoint, direction, half = geometry.bridge
        polylines(canvas, [np.stack([midpoint - direction * half, midpoint + direction * half])], 230, 3.0 * unit)
        disc(canvas, midpoint, 3.0 * unit, 255)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.7 * unit, 0.5)).astype(np.float32) / 255.0


def green_mitotic_spindle(geometry, rng, context):  # 17
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
            cv2.fillPoly(canvas, [fixed(cone).reshape(-1, 1, 2)], 120, cv2.LINE_AA, SHIFT)
            disc(canvas, pole, 3.0 * unit, 255)
        draw_spindle(canvas, cell, rng, unit, value_range=(200, 255), count=10)
    return cv2.GaussianBlur(canvas, (0, 0), max(1.0 * unit, 0.5)).astype(np.float32) / 255.0


def _centrosome_points(geometry, rng, pair):
    points, amplitudes = [], []
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.7, 1.0)):
        if cell.kind == "mitotic":
            continue
        center = cell.beside_nucleus(
            cell.centrosome_angle + rng.normal(0.0, 0.2), rng.uniform(2.0, 4.0) * geometry.unit
        )
        points.append(center)
        amplitudes.append(gain)
        if pair:
            angle = rng.uniform(0.0, TWO_PI)
            points.append(center + 5.5 * geometry.unit * np.array([math.cos(angle), math.sin(angle)]))
            amplitudes.append(gain * rng.uniform(0.8, 1.0))
    return points, amplitudes


def green_mtoc(geometry, rng, context):  # 18
    points, amplitudes = _centrosome_points(geometry, rng, pair=False)
    return spots(geometry.size, points, amplitudes, 2.6 * geometry.unit)


def green_centrosome(geometry, rng, context):  # 19
    points, amplitudes = _centrosome_points(geometry, rng, pair=True)
    return spots(geometry.size, points, amplitudes, 1.6 * geometry.unit)


def _outline_curves(cell, wanted):
    """Runs of the cell's outline whose neighbour matches ``wanted`` (a predicate on neighbour ids)."""
    fine = np.linspace(0.0, TWO_PI, ANGLES * 4, endpoint=False)
    neighbours = cell.neighbour[np.rint(fine / TWO_PI * ANGLES).astype(int) % ANGLES]
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


def green_plasma_membrane(geometry, rng, context):  # 21
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.6, 1.0)):
        polylines(canvas, _outline_curves(cell, lambda ids: ids != -2), int(200 * gain), 1.3 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.7 * unit, 0.5)).astype(np.float32) / 200.0


def green_cell_junctions(geometry, rng, context):  # 22
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, cell_gains(geometry, rng, 0.7, 1.0)):
        polylines(canvas, _outline_curves(cell, lambda ids: ids >= 0), int(255 * gain), 2.5 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.8 * unit, 0.5)).astype(np.float32) / 255.0
