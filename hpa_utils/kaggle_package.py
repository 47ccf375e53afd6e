"""The package dataset of the Kaggle export: hpa_utils, the presets, the requirements files and the wheels of what a
Kaggle image lacks (imgaug, iterative-stratification, EfficientNet-Lite0's weights), with its dataset-metadata.json."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hpa_utils import atomic_files, environment, offline_wheels
from hpa_utils.kaggle_kernels import DATASET_SLUG

DATASET_LICENSE = "CC-BY-SA-3.0"
DATASET_METADATA_FILE = "dataset-metadata.json"
DATASET_FILES = ("requirements.txt", "requirements-nodeps.txt")
_COPY_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def write_package_dataset(folder: Path, user: str, wheel_dir=None) -> None:
    """The hpa_utils package, presets, requirements and offline wheels, with dataset-metadata.json, as Kaggle wants."""
    root = environment.REPO_ROOT
    shutil.copytree(root / "hpa_utils", folder / "hpa_utils", ignore=_COPY_IGNORED)
    if (root / "presets").is_dir():
        shutil.copytree(root / "presets", folder / "presets", ignore=_COPY_IGNORED)
    for name in DATASET_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, folder / name)
    carried = collect_wheels(folder / offline_wheels.WHEELS_FOLDER, cache=wheel_dir)
    description = (
        "The `hpa_utils` package of the Human Protein Atlas notebook bundle (HPA 00 eda ... HPA 04 kfold). "
        "Each kernel finds it under /kaggle/input by its hpa_utils/__init__.py, wherever Kaggle mounts the "
        "dataset, and puts it on sys.path, so `from hpa_utils import dataset, models` works offline. Holds "
        "hpa_utils/ (with its data/*.csv), presets/, the requirements files, and wheels/ ("
        + ", ".join(path.name for path in carried)
        + "), imported from there only where Kaggle's image lacks them."
    )
    (folder / "README.md").write_text(f"# hpa-utils\n\n{description}\n", encoding="utf-8")
    atomic_files.write_json(
        folder / DATASET_METADATA_FILE,
        {
            "title": "HPA utils package",
            "id": f"{user}/{DATASET_SLUG}",
            "subtitle": "The hpa_utils package the HPA notebook kernels import",
            "description": description,
            "licenses": [{"name": DATASET_LICENSE}],
        },
    )


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


def collect_wheels(out: Path, cache: Path | None = None, versions: dict | None = None) -> list[Path]:
    """Copy the wheel of each of WHEELS, at the installed version, into ``out``; return the copied files.

    Looks in ``cache`` (default <repo>/.whl/) first, else downloads it there with ``pip download
    --no-deps``. ``versions`` ({distribution: version}) overrides the installed versions. Raises
    RuntimeError naming the wheel, the cache and pip's error when neither works.
    """
    cache = Path(cache) if cache else offline_wheels.LOCAL_CACHE
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for distribution in offline_wheels.WHEELS.values():
        version = (versions or {}).get(distribution) or importlib.metadata.version(distribution)
        wheel = offline_wheels.find_wheel(distribution, cache, version)
        if wheel is None:
            error = _download(f"{distribution}=={version}", cache)
            wheel = offline_wheels.find_wheel(distribution, cache, version)
            if wheel is None:
                raise RuntimeError(
                    f"no wheel of {distribution}=={version}: not in {cache}, and `pip download` failed "
                    f"({error or 'no wheel written'}). Put {offline_wheels.wheel_prefix(distribution)}{version}-*.whl "
                    f"into {cache} (or pass another wheel folder) and export again."
                )
        copied.append(Path(shutil.copy2(wheel, out / wheel.name)))
    return copied
