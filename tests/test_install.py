"""The install: the optional fast PNG decoder is tried, and a machine that cannot build it still installs."""

import os
import subprocess
import sys

import pytest

from hpa_utils.system import environment

REPO = environment.REPO_ROOT


def test_requirements_leave_the_compiled_decoder_to_the_optional_step():
    required = (REPO / "requirements.txt").read_text()
    optional = (REPO / "requirements-optional.txt").read_text()
    assert "pywuffs" not in required and "pywuffs>=" in optional
    makefile = (REPO / "Makefile").read_text()
    assert "$(MAKE) --no-print-directory optional" in makefile  # the install step runs it


# slow: a fresh virtual environment, and pip fetching and failing to build pywuffs's source (about 30 s)
@pytest.mark.integration
def test_without_a_compiler_the_optional_step_reports_and_the_install_goes_on(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    no_compiler = {
        **os.environ,
        "CC": str(tmp_path / "no-such-cc"),
        "CXX": str(tmp_path / "no-such-c++"),
        "PIP_NO_CACHE_DIR": "1",  # no wheel built earlier on this machine
    }
    result = subprocess.run(
        ["make", "--no-print-directory", "optional", f"PY={python}"],
        cwd=REPO,
        env=no_compiler,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed building wheel for pywuffs" in result.stdout + result.stderr  # the compiler was missed, not the net
    assert "optional: pywuffs did not install" in result.stdout and "decode with cv2" in result.stdout
    check = subprocess.run([str(python), "-c", "import pywuffs"], capture_output=True, text=True)
    assert check.returncode != 0 and "No module named 'pywuffs'" in check.stderr
