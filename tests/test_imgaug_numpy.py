"""The NumPy 2 compatibility step for imgaug: adds only np.sctypes / np.complex, only when missing."""

import json
import os
import subprocess
import sys

import numpy as np

from hpa_utils.system import environment
from hpa_utils.training import augment

REPO = environment.REPO_ROOT

# Runs in a fresh interpreter, so the "before" state is NumPy as imported, untouched by other tests.
FRESH_PROCESS_CHECK = """
import json, numpy as np
from hpa_utils.training import augment
before = set(dir(np))
had = {name: hasattr(np, name) for name in ("sctypes", "complex")}
first = augment.patch_numpy_for_imgaug()
after_first = set(dir(np))
sctypes_object = np.sctypes
second = augment.patch_numpy_for_imgaug()
after_second = set(dir(np))
import imgaug.augmenters as iaa
import imgaug.parameters as iap
noise = iap.FrequencyNoise().draw_samples((16, 16, 1))  # the np.complex user
print(json.dumps({
    "numpy": np.__version__,
    "had": had,
    "first": first,
    "second": second,
    "added": sorted(after_first - before),
    "removed": sorted(before - after_first),
    "changed_by_second": sorted(after_second ^ after_first),
    "same_sctypes_object": np.sctypes is sctypes_object,
    "noise_shape": list(noise.shape),
    "has_rot90": hasattr(iaa, "Rot90"),
}))
"""


def run_fresh_check():
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_CHECK],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_patch_adds_only_the_missing_names_and_imgaug_imports():
    result = run_fresh_check()
    missing = [name for name, present in result["had"].items() if not present]
    assert sorted(result["first"]) == sorted(missing)
    assert result["added"] == sorted(missing)  # nothing else appeared on np
    assert result["removed"] == []
    if np.lib.NumpyVersion(result["numpy"]) >= "2.0.0":
        assert sorted(missing) == ["complex", "sctypes"]
    assert result["has_rot90"]
    assert result["noise_shape"] == [16, 16, 1]


def test_patch_is_idempotent():
    result = run_fresh_check()
    assert result["second"] == []
    assert result["changed_by_second"] == []
    assert result["same_sctypes_object"]


def test_sctypes_has_numpy1_content():
    augment.patch_numpy_for_imgaug()
    assert set(np.sctypes) == {"int", "uint", "float", "complex", "others"}
    assert np.sctypes["int"][:4] == [np.int8, np.int16, np.int32, np.int64]
    assert np.sctypes["uint"][:4] == [np.uint8, np.uint16, np.uint32, np.uint64]
    assert np.sctypes["float"][:3] == [np.float16, np.float32, np.float64]
    assert np.sctypes["complex"][:2] == [np.complex64, np.complex128]
    assert {bool, object, bytes, str, np.void} == set(np.sctypes["others"])
    assert np.complex is complex
    before = set(dir(np))
    assert augment.patch_numpy_for_imgaug() == []
    assert set(dir(np)) == before
