"""The one compatibility step: the NumPy 1 names imgaug 0.4.0 needs that NumPy 2 removed."""

from __future__ import annotations

import numpy as np


def _numpy1_sctypes() -> dict[str, list[type]]:
    """``np.sctypes`` as NumPy 1.x defined it (sized scalar types by kind, no duplicates)."""
    floats = [np.float16, np.float32, np.float64]
    complexes = [np.complex64, np.complex128]
    if np.dtype(np.longdouble).itemsize > np.dtype(np.float64).itemsize:  # float128 / complex256
        floats.append(np.longdouble)
        complexes.append(np.clongdouble)
    return {
        "int": [np.int8, np.int16, np.int32, np.int64],
        "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
        "float": floats,
        "complex": complexes,
        "others": [bool, object, bytes, str, np.void],
    }


def patch_numpy_for_imgaug() -> list[str]:
    """Restore ``np.sctypes`` and ``np.complex`` where they are missing (NumPy >= 2); idempotent.

    imgaug 0.4.0 reads ``np.sctypes`` at import and uses ``np.complex`` in its frequency-noise
    parameters; no other removed name is used by it. Nothing is changed on NumPy 1, and a second
    call changes nothing. Returns the names that this call added.
    """
    added = []
    if not hasattr(np, "sctypes"):
        np.sctypes = _numpy1_sctypes()
        added.append("sctypes")
    if not hasattr(np, "complex"):
        np.complex = complex
        added.append("complex")
    return added
