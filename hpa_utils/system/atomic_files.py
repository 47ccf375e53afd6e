"""Files a run keeps: atomic writes (temporary file, then rename) and small JSON helpers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from hpa_utils import errors


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary Path beside ``path``; rename it over ``path`` only if the block succeeds.

    A reader never sees a half-written file, and an error or a kill leaves the old file as it was.
    The temporary name keeps the suffix of ``path`` (libraries such as Keras and NumPy check it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{''.join(path.suffixes)}", dir=path.parent
    )
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def copy_file(source, target) -> Path:
    """Copy ``source`` to ``target`` atomically (its folders made as needed)."""
    with atomic_write(target) as temporary:
        shutil.copyfile(source, temporary)
    return Path(target)


def write_json(path, value) -> Path:
    """Write ``value`` as indented JSON, atomically. A value JSON cannot hold raises TypeError/ValueError naming
    the file (and the old file stays as it was)."""
    try:
        text = json.dumps(value, indent=2, sort_keys=False) + "\n"
    except (TypeError, ValueError) as error:
        raise type(error)(f"{path}: cannot write this value as JSON ({error})") from error
    with atomic_write(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def read_json(path):
    """Read a JSON file, naming the file in the error when it is missing or broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise errors.MissingError(f"{path}: file not found") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise errors.InputError(f"{path}: not valid JSON ({error})") from error
