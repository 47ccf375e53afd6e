"""Offline wheels: imgaug and iterative-stratification, in the hpa-utils dataset for a Kaggle image that lacks them.

Both are pure Python, so a wheel on ``sys.path`` imports as it is (zipimport): no pip, no internet,
nothing written. ``import_module`` tries the installed package first and falls back to the wheel;
``collect`` puts the wheels into the exported dataset at export time.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hpa_utils import environment

WHEELS = {"imgaug": "imgaug", "iterstrat": "iterative-stratification"}  # import name -> distribution
WHEELS_FOLDER = "wheels"  # beside hpa_utils/ in the dataset (and the local wheel cache: <repo>/.whl/)
LOCAL_CACHE = environment.REPO_ROOT / ".whl"


def _wheel_prefix(distribution: str) -> str:
    return distribution.replace("-", "_") + "-"  # wheel file names spell the distribution with underscores


def find_wheel(distribution: str, folder: Path, version: str | None = None) -> Path | None:
    """The newest-named ``<distribution>-<version>-*.whl`` in ``folder`` (any version when None), or None."""
    prefix = _wheel_prefix(distribution) + (f"{version}-" if version else "")
    found = sorted(path for path in Path(folder).glob("*.whl") if path.name.lower().startswith(prefix.lower()))
    return found[-1] if found else None


def import_module(name: str):
    """``importlib.import_module(name)``; when its package is not installed, import it from the dataset's wheel.

    Raises ModuleNotFoundError saying what to install or attach when neither works.
    """
    top = name.split(".")[0]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != top or top not in WHEELS:
            raise
    distribution = WHEELS[top]
    folder = environment.REPO_ROOT / WHEELS_FOLDER
    wheel = find_wheel(distribution, folder)
    if wheel is None:
        raise ModuleNotFoundError(
            f"{top} is not installed and {folder} holds no {distribution} wheel. Install it "
            f"(pip install --no-deps {distribution}), or on Kaggle attach the hpa-utils dataset written by "
            f"`python -m hpa_utils kaggle-export`, which carries it.",
            name=top,
        )
    sys.path.insert(0, str(wheel))
    module = importlib.import_module(name)
    print(f"{top}: not installed here, imported from {wheel}")
    return module


def _download(requirement: str, cache: Path) -> str:
    """Download one wheel into ``cache`` with pip (no dependencies); the error text, or "" on success.

    pip writes into a fresh folder beside the cache and each wheel is then renamed into it, so a
    reader (another export, another test worker) never sees a half-written wheel.
    """
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as folder:
        error = _pip_download(requirement, Path(folder))
        for wheel in Path(folder).glob("*.whl"):
            os.replace(wheel, cache / wheel.name)
    return error


def _pip_download(requirement: str, folder: Path) -> str:
    """Download one wheel with pip (no dependencies); the error text, or "" on success."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--quiet",
        "--disable-pip-version-check",
        "-d",
        str(folder),
        requirement,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return "" if result.returncode == 0 else (result.stderr.strip().splitlines() or ["pip failed"])[-1]


def collect(out: Path, cache: Path | None = None, versions: dict | None = None) -> list[Path]:
    """Copy the wheel of each of WHEELS, at the installed version, into ``out``; return the copied files.

    Looks in ``cache`` (default <repo>/.whl/) first, else downloads it there with ``pip download
    --no-deps``. ``versions`` ({distribution: version}) overrides the installed versions. Raises
    RuntimeError naming the wheel, the cache and pip's error when neither works.
    """
    cache = Path(cache) if cache else LOCAL_CACHE
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for distribution in WHEELS.values():
        version = (versions or {}).get(distribution) or importlib.metadata.version(distribution)
        wheel = find_wheel(distribution, cache, version)
        if wheel is None:
            error = _download(f"{distribution}=={version}", cache)
            wheel = find_wheel(distribution, cache, version)
            if wheel is None:
                raise RuntimeError(
                    f"no wheel of {distribution}=={version}: not in {cache}, and `pip download` failed "
                    f"({error or 'no wheel written'}). Put {_wheel_prefix(distribution)}{version}-*.whl into "
                    f"{cache} (or pass another wheel folder) and export again."
                )
        copied.append(Path(shutil.copy2(wheel, out / wheel.name)))
    return copied
