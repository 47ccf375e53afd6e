"""Memory: the peak a notebook's kernel reached (sampled from /proc while it runs), the machine's total, and the
devices' memory in words (what an out-of-memory message names). Linux tells; elsewhere the answers are None."""

from __future__ import annotations

import threading
from pathlib import Path

SAMPLE_SECONDS = 0.5


def _status_kilobytes(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in task.read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process started by ``pid``, and by those (a notebook's kernel is the runner's child)."""
    found, queue = [], _children(pid)
    while queue:
        child = queue.pop()
        found.append(child)
        queue += _children(child)
    return found


def total_bytes() -> int | None:
    """The machine's memory (/proc/meminfo's MemTotal)."""
    try:
        line = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError):
        return None


class PeakWatcher:
    """A context that samples, every half second, the peak resident memory (VmHWM) of each process below ``pid``;
    ``peak`` is the largest one seen (bytes), None where /proc does not tell."""

    def __init__(self, pid: int):
        self.pid, self.peak = pid, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            for child in descendants(self.pid):
                high = _status_kilobytes(child, "VmHWM")
                if high is not None:
                    self.peak = max(self.peak or 0, high * 1024)
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def __enter__(self) -> PeakWatcher:
        if Path(f"/proc/{self.pid}/task").is_dir():
            self._thread.start()
        return self

    def __exit__(self, *exception) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
