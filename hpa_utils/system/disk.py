"""Disk space: what a folder has free, whether an error is a full disk, and the one line a full disk gets (what a
stage writes is ``pipeline.stage_space``'s)."""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
FULL_DISK_TEXTS = ("No space left on device", "Disk quota exceeded", "File too large")
KAGGLE_WORKING_BYTES = 20e9  # what Kaggle keeps of /kaggle/working: a kernel's output


def free_bytes(folder) -> int:
    """Free bytes on the disk that holds ``folder`` (or its nearest existing parent)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def describe(size: float) -> str:
    """ "740 KB", "12 MB", "3.4 GB"."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}" if size < 10 * scale else f"{size / scale:.0f} {unit}"
    return f"{size / 1e3:.0f} KB"


def is_full_disk(error: BaseException | str) -> bool:
    """Whether an exception (or a kernel's error text) says a disk is full or a file-size limit was hit."""
    if isinstance(error, OSError) and error.errno in FULL_DISK_ERRNOS:
        return True
    return any(text in str(error) for text in FULL_DISK_TEXTS)


def path_in(error: BaseException | str) -> Path | None:
    """The file an OSError (or its text, "...: '/path'") names, if any."""
    name = getattr(error, "filename", None)
    if not name:
        found = re.search(r"No space left on device: '([^']+)'|File too large: '([^']+)'", str(error))
        name = found and (found.group(1) or found.group(2))
    return Path(name) if name else None


def ran_out(folder, detail: str = "") -> str:
    """What every full-disk line says: "the disk holding FOLDER ran out of space (740 KB free now``detail``)"."""
    return f"the disk holding {folder} ran out of space ({describe(free_bytes(folder))} free now{detail})"


def full_disk_line(stage: str, folder, needs: int | None = None) -> str:
    """The one line a full disk gets: which folder, its free space, about what the stage needs, what to do."""
    need = f"; {stage} writes about {describe(needs)} there" if needs else ""
    return f"{stage} stopped: {ran_out(folder, need)}"
