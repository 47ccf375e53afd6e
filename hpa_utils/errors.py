"""The package's own errors, and the checks shared by the package: what counts as an integer, an integer with a
lower bound, culprits in a message.

Every error the package raises on purpose is an ``HpaError`` (the command line prints it as one line); each kind
also subclasses the built-in error a caller would catch (``InputError`` is a ValueError, ``MissingError`` a
FileNotFoundError, ...). Anything else that reaches the command line is a library's failure or a bug: its full
traceback goes to a log file.
"""

from __future__ import annotations

import numpy as np


class HpaError(Exception):
    """An error the package raised on purpose, with a message written for the user."""


class InputError(HpaError, ValueError):
    """A value, parameter, file, row or Id that is wrong: the message names it and says what is wrong."""


class MissingError(HpaError, FileNotFoundError):
    """A file or folder that is not there: the message names it and what makes it."""


class ExistsError(HpaError, FileExistsError):
    """Something is already there and would be overwritten: the message names it and how to keep or replace it."""


class NotWritableError(HpaError, PermissionError):
    """A folder the package must write into refuses it: the message names it and why."""


class NoSpaceError(HpaError, OSError):
    """A disk has too little free space for what is about to be written: the message says how much is needed."""


class SetupError(HpaError, RuntimeError):
    """The machine or the session cannot do what was asked (devices, backend, a package): the message says why."""


class StoppedError(HpaError, RuntimeError):
    """A run that stopped: a stage that failed or cannot go on, training that diverged, a device out of memory."""


class MissingPackageError(HpaError, ModuleNotFoundError):
    """An optional package is neither installed nor among the dataset's wheels: the message says what to install."""


SHOWN_IDS = 5  # how many culprit Ids an error message lists


def is_integer(value) -> bool:
    """Whether ``value`` is a Python or NumPy integer (a bool is not, though Python counts it as one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(name: str, value, minimum: int) -> int:
    """``value`` as an int; ValueError naming ``name`` when it is not an integer or is below ``minimum``."""
    if not is_integer(value):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def show_ids(ids) -> str:
    """How many culprits, and the first SHOWN_IDS of them: "7 (a, b, c, d, e, ...)"."""
    ids = list(ids)
    shown = ", ".join(str(image_id) for image_id in ids[:SHOWN_IDS])
    return f"{len(ids)} ({shown}{', ...' if len(ids) > SHOWN_IDS else ''})"
