"""Near-duplicates between external and competition images: a perceptual hash of the green channel.

The hash (a DCT hash, as ``imagehash.phash`` computes it): the green channel at 32 x 32, its 2-D DCT, the 8 x 8
lowest frequencies, each bit whether a coefficient is above their median. Resizing and re-encoding move few
bits; different fields of view differ in about half of the 64.
"""

from __future__ import annotations

import cv2
import numpy as np

from hpa_utils import errors

GREEN = 1  # the green channel's position in both channel modes (rgb, rgby)
MAX_DISTANCE = 8  # bits: at most this many differing bits is a near-duplicate


def green_hashes(images: np.ndarray) -> np.ndarray:
    """One 64-bit perceptual hash per image of an (N, H, W, C) uint8 array, from its green channel: (N,) uint64."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] <= GREEN:
        raise errors.InputError(f"images has shape {images.shape}, expected (N, H, W, C) with a green channel")
    hashes = np.zeros(len(images), dtype=np.uint64)
    weights = (1 << np.arange(64, dtype=np.uint64)).astype(np.uint64)
    for index, image in enumerate(images):
        small = cv2.resize(image[:, :, GREEN].astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
        low = cv2.dct(small)[:8, :8].ravel()
        bits = (low > np.median(low[1:])).astype(np.uint64)
        hashes[index] = np.sum(bits * weights, dtype=np.uint64)
    return hashes


def hamming(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Differing bits between every hash of ``first`` (N,) and of ``second`` (M,): (N, M) uint8."""
    return np.bitwise_count(np.bitwise_xor(first[:, None], second[None, :]))


def near_duplicates(external: np.ndarray, held_out: list[np.ndarray], max_distance: int = MAX_DISTANCE) -> np.ndarray:
    """Which ``external`` images (N, H, W, C) near-duplicate an image of any array in ``held_out``: (N,) bool."""
    external_hashes = green_hashes(external)
    found = np.zeros(len(external_hashes), dtype=bool)
    for images in held_out:
        if len(images) == 0 or len(external_hashes) == 0:
            continue
        reference = green_hashes(images)
        for low in range(0, len(external_hashes), 4096):  # 4096 x 4096 distances (128 MB) at a time
            for start in range(0, len(reference), 4096):
                distances = hamming(external_hashes[low : low + 4096], reference[start : start + 4096])
                found[low : low + 4096] |= (distances <= max_distance).any(axis=1)
    return found
