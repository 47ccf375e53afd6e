"""Checks shared by the package: what counts as an integer, an integer with a lower bound, culprits in a message."""

from __future__ import annotations

import numpy as np

SHOWN_IDS = 5  # how many culprit Ids an error message lists


def is_integer(value) -> bool:
    """Whether ``value`` is a Python or NumPy integer (a bool is not, though Python counts it as one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(name: str, value, minimum: int) -> int:
    """``value`` as an int; ValueError naming ``name`` when it is not an integer or is below ``minimum``."""
    if not is_integer(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def show_ids(ids) -> str:
    """How many culprits, and the first SHOWN_IDS of them: "7 (a, b, c, d, e, ...)"."""
    ids = list(ids)
    shown = ", ".join(str(image_id) for image_id in ids[:SHOWN_IDS])
    return f"{len(ids)} ({shown}{', ...' if len(ids) > SHOWN_IDS else ''})"
