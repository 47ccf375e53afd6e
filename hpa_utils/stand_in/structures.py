"""The generic source task: procedurally drawn structures (shapes, spots, fibres, textures) at three scales.

ImageNet's role in the method is "many classes of generic visual structure". Here each source image holds one to
four structures on a dark background, each one of ``FAMILIES`` drawn at one of ``SCALES`` in a random mix of the
three channels, and the source task names which of the 30 (family, scale) classes an image holds (multi-label, as
HPA's). Nothing here reads the 28 protein labels or the embedded generator's patterns: the families are generic
drawing primitives, their sizes shares of the image side, their colours and places random.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

SCALES = {"small": 0.06, "medium": 0.14, "large": 0.3}  # a structure's size as a share of the image side
STRUCTURE_COUNTS, COUNT_SHARES = (1, 2, 3, 4), (0.4, 0.3, 0.2, 0.1)  # structures per image


def _xy(point) -> tuple[int, int]:
    return int(point[0]), int(point[1])


def _direction(rng) -> np.ndarray:
    angle = rng.uniform(0, np.pi)
    return np.array([np.cos(angle), np.sin(angle)])


def _disc(canvas, at, size, rng):
    cv2.circle(canvas, _xy(at), max(1, int(size / 2)), 1.0, -1)


def _ring(canvas, at, size, rng):
    cv2.circle(canvas, _xy(at), max(2, int(size / 2)), 1.0, max(1, round(size / 8)))


def _polygon(canvas, at, size, rng):
    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 6))))
    corners = at + size / 2 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    cv2.fillPoly(canvas, [corners.astype(np.int32)], 1.0)


def _bar(canvas, at, size, rng):
    arm = _direction(rng) * size
    cv2.line(canvas, _xy(at - arm), _xy(at + arm), 1.0, max(1, round(size / 8)))


def _cross(canvas, at, size, rng):
    direction = _direction(rng)
    for arm in (direction * size / 2, np.array([-direction[1], direction[0]]) * size / 2):
        cv2.line(canvas, _xy(at - arm), _xy(at + arm), 1.0, max(1, round(size / 8)))


def _fibre(canvas, at, size, rng):
    """A wavy curve three sizes long."""
    direction = _direction(rng)
    steps = np.linspace(-1.5, 1.5, 40)[:, None]
    wave = np.sin(steps * rng.uniform(2, 5) + rng.uniform(0, 2 * np.pi)) * size * 0.3
    points = at + steps * size * direction + wave * np.array([-direction[1], direction[0]])
    cv2.polylines(canvas, [points.astype(np.int32)], False, 1.0, max(1, round(size / 16) + 1))


def _spots(canvas, at, size, rng):
    """6-24 small dots scattered over a patch three sizes wide."""
    for _ in range(int(rng.integers(6, 25))):
        cv2.circle(canvas, _xy(at + rng.uniform(-1.5, 1.5, 2) * size), max(1, int(size / 6)), 1.0, -1)


def _grating(canvas, at, size, rng):
    """Parallel stripes over a disc three sizes wide."""
    yy, xx = np.mgrid[0 : canvas.shape[0], 0 : canvas.shape[1]].astype(np.float32)
    direction = _direction(rng)
    stripes = np.sin((xx * direction[0] + yy * direction[1]) * 2 * np.pi / max(size / 2, 2)) > 0.3
    canvas[:] = np.maximum(canvas, stripes * _patch(canvas.shape, at, 1.5 * size))


def _lattice(canvas, at, size, rng):
    """A regular grid of dots over a disc three sizes wide."""
    yy, xx = np.mgrid[0 : canvas.shape[0], 0 : canvas.shape[1]].astype(np.float32)
    spacing = max(size / 2, 3)
    near = [
        np.abs((grid - centre) % spacing - spacing / 2) < spacing / 5 for grid, centre in ((xx, at[0]), (yy, at[1]))
    ]
    canvas[:] = np.maximum(canvas, near[0] & near[1] & _patch(canvas.shape, at, 1.5 * size))


def _clouds(canvas, at, size, rng):
    """Smoothed noise, thresholded, over a disc three sizes wide."""
    noise = cv2.GaussianBlur(rng.standard_normal(canvas.shape).astype(np.float32), (0, 0), max(size / 4, 1))
    canvas[:] = np.maximum(canvas, (noise > 0.5 * noise.std()) & _patch(canvas.shape, at, 1.5 * size))


def _patch(shape, at, radius: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, _xy(at), int(radius), 1, -1)
    return mask.astype(bool)


SHAPES = {"disc": _disc, "ring": _ring, "polygon": _polygon, "bar": _bar, "cross": _cross, "fibre": _fibre}
TEXTURES = {"spots": _spots, "grating": _grating, "lattice": _lattice, "clouds": _clouds}
FAMILIES = (*SHAPES, *TEXTURES)
CLASSES = tuple(f"{family} {scale}" for family, scale in itertools.product(FAMILIES, SCALES))


def draw_structure(family: str, size: float, side: int, rng) -> np.ndarray:
    """A (side, side) float32 mask in [0, 1] of one ``family`` structure of ``size`` pixels at a random place: a
    shape 1-3 times near one point, or a texture over one patch."""
    canvas = np.zeros((side, side), np.float32)
    centre = rng.uniform(0, side, 2)
    if family in TEXTURES:
        TEXTURES[family](canvas, centre, size, rng)
    else:
        for _ in range(int(rng.integers(1, 4))):
            SHAPES[family](canvas, np.clip(centre + rng.normal(0, size, 2), 0, side - 1), size, rng)
    return canvas


def structures_sample(rng, side: int) -> tuple[np.ndarray, np.ndarray]:
    """One source image (side, side, 3) uint8 and its multi-hot target over ``CLASSES``."""
    image = rng.uniform(0, 12) + rng.normal(0, rng.uniform(1, 4), (side, side, 3))
    chosen = rng.choice(len(CLASSES), size=int(rng.choice(STRUCTURE_COUNTS, p=COUNT_SHARES)), replace=False)
    for index in chosen:
        family, scale = FAMILIES[index // len(SCALES)], list(SCALES.values())[index % len(SCALES)]
        mask = draw_structure(family, scale * side * rng.uniform(0.75, 1.25), side, rng)
        colour = rng.uniform(60, 255, 3) * (rng.random(3) < 0.6)
        if not colour.any():
            colour[rng.integers(3)] = rng.uniform(60, 255)
        image += mask[:, :, None] * colour
    blur = rng.uniform(0, 1.5)
    if blur > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    target = np.zeros(len(CLASSES), np.float32)
    target[chosen] = 1.0
    return np.clip(image, 0, 255).astype(np.uint8), target
