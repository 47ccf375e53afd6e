"""Green: one pattern per class, where the protein sits; GREEN_PATTERNS lists them in class order."""

from __future__ import annotations

import math

import cv2
import numpy as np

from hpa_utils.synthetic.cells import ANGLES, TWO_PI, bounding_box
from hpa_utils.synthetic.drawing import (
    ONE,
    SHIFT,
    bent_curves,
    disc,
    fixed,
    polylines,
    polylines_graded,
    smooth_noise,
    spots,
)
from hpa_utils.synthetic.stains import draw_spindle


def _cell_gains(geometry, rng, low=0.45, high=1.0, share=1.0):
    """A brightness per cell; a cell shows the pattern with probability ``share``."""
    gains = rng.uniform(low, high, len(geometry.cells))
    gains[rng.random(len(geometry.cells)) > share] = 0.0
    return gains


def _green_nucleoplasm(geometry, rng, context):  # 0
    texture = 1.0 + 0.08 * smooth_noise(rng, geometry.size, 10.0 * geometry.unit)
    return geometry.nucleus_mask() * texture * geometry.per_cell(_cell_gains(geometry, rng, 0.6, 1.0)) * 0.75


def _green_nuclear_membrane(geometry, rng, context):  # 1
    width = np.float32(max(0.05, 1.4 * geometry.unit / 30.0))
    ring = np.exp(-np.square((geometry.nucleus_distance - 0.97) / width))
    return ring * geometry.per_cell(_cell_gains(geometry, rng, 0.6, 1.0))


def _green_nucleoli(geometry, rng, context):  # 2
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        for x, y, radius in cell.nucleoli:
            disc(canvas, (x, y), radius * 1.05, int(255 * gain))
    return cv2.GaussianBlur(canvas, (0, 0), max(0.8 * geometry.unit, 0.5)).astype(np.float32) / 255.0


def _green_fibrillar_center(geometry, rng, context):  # 3
    points, amplitudes = [], []
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        for x, y, radius in cell.nucleoli:
            count = int(rng.integers(4, 11))
            angles = rng.uniform(0.0, TWO_PI, count)
            distance = radius * 0.8 * np.sqrt(rng.random(count))
            points.append(np.stack([x + distance * np.cos(angles), y + distance * np.sin(angles)], 1))
            amplitudes.append(np.full(count, gain))
    if not points:
        return np.zeros((geometry.size, geometry.size), np.float32)
    glow = _green_nucleoli(geometry, rng, context) * 0.12  # the nucleoli around the dots, faintly
    return glow + spots(geometry.size, np.concatenate(points), np.concatenate(amplitudes), 0.8 * geometry.unit) * 1.6


def _green_speckles(geometry, rng, context):  # 4
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
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


def _green_nuclear_bodies(geometry, rng, context):  # 5
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.7, 1.0)):
        for point in cell.nucleus_points(int(rng.integers(1, 7)), rng, high=0.8):
            disc(canvas, point, rng.uniform(2.0, 3.4) * unit, int(255 * gain))
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
        polylines(canvas, [arc], int(255 * gain), thickness)
        for point in arc[1:-1:2]:
            disc(canvas, point + rng.normal(0.0, 2.0 * unit, 2), rng.uniform(3.0, 5.0) * unit, int(255 * gain))
    return cv2.GaussianBlur(canvas, (0, 0), max(1.0 * unit, 0.5)).astype(np.float32) / 255.0


def _dots_in_cytoplasm(
    geometry,
    rng,
    per_100_pixels,
    radius_range,
    ring_share=0.0,
    low=0.06,
    high=0.94,
    power=0.5,
    share=1.0,
    thickness=1.0,
):
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
            disc(canvas, point, radius, int(value), thickness * unit if is_ring else None)
    return canvas.astype(np.float32) / 255.0


def _green_peroxisomes(geometry, rng, context):  # 8
    return _dots_in_cytoplasm(geometry, rng, (70, 110), (0.9, 1.6))


def _green_endosomes(geometry, rng, context):  # 9
    return _dots_in_cytoplasm(geometry, rng, (22, 40), (2.0, 3.5), ring_share=0.35, power=0.7)


def _green_lysosomes(geometry, rng, context):  # 10
    return _dots_in_cytoplasm(geometry, rng, (22, 40), (1.8, 3.2), ring_share=0.1, low=0.02, high=0.45, power=1.3)


def _green_intermediate_filaments(geometry, rng, context):  # 11
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
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


def _green_actin(geometry, rng, context):  # 12
    unit = geometry.unit
    size = geometry.size
    canvas = np.zeros((size, size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
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


def _green_focal_adhesions(geometry, rng, context):  # 13
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
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


def _green_microtubules(geometry, rng, context):  # 14
    gains = geometry.per_cell(_cell_gains(geometry, rng, 0.7, 1.0))
    return context["filaments"].astype(np.float32) * np.float32(1.0 / 140.0) * gains


def _green_microtubule_ends(geometry, rng, context):  # 15
    tips = context["tips"]
    if len(tips) == 0:
        return np.zeros((geometry.size, geometry.size), np.float32)
    keep = rng.random(len(tips)) < 0.85
    return spots(geometry.size, tips[keep], rng.uniform(0.6, 1.0, int(keep.sum())), 1.0 * geometry.unit) * 1.2


def _green_cytokinetic_bridge(geometry, rng, context):  # 16
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    if geometry.bridge is not None:
        midpoint, direction, half = geometry.bridge
        polylines(canvas, [np.stack([midpoint - direction * half, midpoint + direction * half])], 230, 3.0 * unit)
        disc(canvas, midpoint, 3.0 * unit, 255)
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
            cv2.fillPoly(canvas, [fixed(cone).reshape(-1, 1, 2)], 120, cv2.LINE_AA, SHIFT)
            disc(canvas, pole, 3.0 * unit, 255)
        draw_spindle(canvas, cell, rng, unit, value_range=(200, 255), count=10)
    return cv2.GaussianBlur(canvas, (0, 0), max(1.0 * unit, 0.5)).astype(np.float32) / 255.0


def _centrosome_points(geometry, rng, pair):
    points, amplitudes = [], []
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.7, 1.0)):
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


def _green_mtoc(geometry, rng, context):  # 18
    points, amplitudes = _centrosome_points(geometry, rng, pair=False)
    return spots(geometry.size, points, amplitudes, 2.6 * geometry.unit)


def _green_centrosome(geometry, rng, context):  # 19
    points, amplitudes = _centrosome_points(geometry, rng, pair=True)
    return spots(geometry.size, points, amplitudes, 1.6 * geometry.unit)


def _green_lipid_droplets(geometry, rng, context):  # 20
    return _dots_in_cytoplasm(geometry, rng, (10, 22), (2.5, 4.5), ring_share=1.0, thickness=1.3)


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


def _green_plasma_membrane(geometry, rng, context):  # 21
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        polylines(canvas, _outline_curves(cell, lambda ids: ids != -2), int(200 * gain), 1.3 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.7 * unit, 0.5)).astype(np.float32) / 200.0


def _green_cell_junctions(geometry, rng, context):  # 22
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.7, 1.0)):
        polylines(canvas, _outline_curves(cell, lambda ids: ids >= 0), int(255 * gain), 2.5 * unit)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.8 * unit, 0.5)).astype(np.float32) / 255.0


def _green_mitochondria(geometry, rng, context):  # 23
    unit = geometry.unit
    canvas = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    for cell, gain in zip(geometry.cells, _cell_gains(geometry, rng, 0.6, 1.0)):
        count = max(int(rng.uniform(40, 70) * (cell.radius / (100.0 * unit)) ** 2), 3)
        starts, _ = cell.cytoplasm_points(count, rng, 0.05, 0.85, power=0.8)
        angles = rng.uniform(0.0, TWO_PI, count)
        lengths = rng.uniform(5.0, 13.0, count) * unit
        ends = starts + lengths[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        curves = bent_curves(starts, ends, 0.15 * lengths, rng, points=4)
        polylines(canvas, list(curves), int(230 * gain), 1.5 * unit)
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


def _green_cytosol(geometry, rng, context):  # 25
    texture = 1.0 + 0.1 * smooth_noise(rng, geometry.size, 14.0 * geometry.unit)
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
                angle = rng.uniform(0.0, TWO_PI)
                half = rng.uniform(4.0, 8.0) * unit * np.array([math.cos(angle), math.sin(angle)])
                polylines(canvas, [np.stack([point - half, point + half])], int(255 * gain), 2.5 * unit)
            else:
                disc(canvas, point, rng.uniform(3.0, 5.0) * unit, int(255 * gain), 1.8 * unit)
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
