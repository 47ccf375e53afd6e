"""Fixtures shared by several test files."""

from pathlib import Path

import pytest

from hpa_utils import wheels


@pytest.fixture()
def without_wheel_packages(tmp_path) -> Path:
    """A folder that, first on PYTHONPATH, makes imgaug and iterstrat unimportable, as on an image without them."""
    folder = tmp_path / "unimportable"
    for name in wheels.WHEELS:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}' (made unimportable by the test)\", name={name!r})\n"
        )
    return folder
