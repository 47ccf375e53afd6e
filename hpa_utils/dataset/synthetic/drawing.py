"""Drawing helpers on float canvases: sub-pixel discs and polylines, Gaussian spots, smooth noise, bent curves."""

from __future__ import annotations

import math

import cv2
import numpy as np

SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn as int(x * 16)

ONE = 1 << SHIFT


def fixed(points):
    """Float pixel coordinates as cv2's fixed-point int32 (shift = 4)."""
    return np.rint(np.asarray(points, dtype=np.float64) * ONE).astype(np.int32)


def _line_width(value, thickness):
    """cv2 draws whole pixels: a line meant to be thinner than one pixel is drawn dimmer instead."""
    drawn = max(int(round(thickness)), 1)
    return int(round(value * min(max(thickness / drawn, 0.3), 1.0))), drawn


def disc(canvas, point, radius, value, thickness=None):
    """A filled disc, or a ring ``thickness`` pixels wide (float)."""
    if thickness is not None:
        value, thickness = _line_width(value, thickness)
    cv2.circle(
        canvas,
        tuple(int(v) for v in fixed(point)),
        max(int(round(radius * ONE)), 1),
        value,
        -1 if thickness is None else thickness,
        cv2.LINE_AA,
        SHIFT,
    )


def polylines(canvas, curves, value, thickness=1.0, closed=False):
    """Anti-aliased curves (each an (n, 2) array of float pixel coordinates), ``thickness`` pixels wide."""
    if len(curves):
        value, drawn = _line_width(value, thickness)
        cv2.polylines(
            canvas, [fixed(curve).reshape(-1, 1, 2) for curve in curves], closed, value, drawn, cv2.LINE_AA, SHIFT
        )


def spots(size, points, amplitudes, sigma):
    """Gaussian spots of peak ~``amplitudes`` at ``points`` (fast: splat, then one blur)."""
    canvas = np.zeros((size, size), dtype=np.float32)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    xs, ys = np.rint(points[:, 0]).astype(np.int64), np.rint(points[:, 1]).astype(np.int64)
    keep = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
    np.add.at(canvas, (ys[keep], xs[keep]), np.broadcast_to(amplitudes, points.shape[:1])[keep])
    sigma = max(sigma, 0.5)
    return cv2.GaussianBlur(canvas, (0, 0), sigma) * np.float32(2.0 * math.pi * sigma * sigma)


def smooth_noise(rng, size, feature, dtype=np.float32):
    """Unit-variance random field with blobs about ``feature`` pixels across."""
    grid = max(int(math.ceil(size / max(feature, 1.0))) + 1, 2)
    coarse = rng.standard_normal((grid, grid)).astype(dtype)
    values = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    values *= np.float32(1.0 / max(float(values[::4, ::4].std()), 1e-6))
    return values


def bent_curves(starts, ends, wobble, rng, points=6):
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


def polylines_graded(canvas, curves, values, thickness=1.0):
    """Draw curves in a few brightness groups (one cv2 call per group)."""
    values = np.asarray(values)
    for value in np.unique(values):
        polylines(canvas, list(curves[values == value]), int(value), thickness)
