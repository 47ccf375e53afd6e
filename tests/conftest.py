"""Fixtures shared by several test files, and the order that lets `make test`'s workers finish together."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from hpa_utils.system import offline_wheels

# `make test` runs `pytest -n <cores + 1> --dist loadfile --no-loadscope-reorder`: each file goes whole to one
# worker, in collection order, and each worker starts with two files. The longest files (minutes each) go first, so
# that they start at once on different workers instead of one of them waiting at the end (xdist's default order
# sorts files by their number of tests, which put the pipeline late).
LONGEST_FIRST = (
    "test_kaggle_simulation.py",
    "test_pipeline.py",
    "test_faults.py",
    "test_pipeline_limits.py",
    "test_benchmarks.py",
    "test_jax.py",
    "test_ablation.py",
    "test_hardware.py",
    "test_efficientnet_lite.py",
    "test_models.py",
    "test_training.py",
)


def pytest_configure(config):
    """Each test session (each worker) starts with an empty JAX compilation cache of its own, as CI's fresh machine
    does: the JAX processes it starts (hpa_utils.start, tests/test_jax.py) share it, none reads an earlier session's."""
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="hpa-jax-cache-")


def pytest_unconfigure(config):
    shutil.rmtree(os.environ.pop("JAX_COMPILATION_CACHE_DIR", ""), ignore_errors=True)


def pytest_collection_modifyitems(items):
    def rank(item):
        return LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the tests of a file keep their order
    for item in items:  # what is not an integration test is a unit test: `pytest -m unit` selects them
        if item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)


@pytest.fixture()
def without_wheel_packages(tmp_path) -> Path:
    """A folder that, first on PYTHONPATH, makes imgaug and iterstrat unimportable, as on an image without them."""
    folder = tmp_path / "unimportable"
    for name in offline_wheels.WHEELS:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}' (made unimportable by the test)\", name={name!r})\n"
        )
    return folder


@pytest.fixture()
def without_wuffs(monkeypatch):
    """``run(function)``: ``function()`` on a new thread that cannot import pywuffs, so that dataset.png has no
    decoder there and channel files decode with cv2, as where pywuffs is not installed (Kaggle's image)."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setitem(sys.modules, "pywuffs", None)  # import pywuffs raises ImportError
    monkeypatch.setitem(sys.modules, "pywuffs.aux", None)

    def run(function):
        with ThreadPoolExecutor(max_workers=1) as fresh_thread:  # dataset.png keeps one decoder per thread
            return fresh_thread.submit(function).result()

    return run
