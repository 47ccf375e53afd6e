"""03's load by layer name on Kaggle's Keras (3.13) and on the newest Keras 3 (the one installed): public API only.

Kaggle's image (2026) has Keras 3.13; a fresh install gets the newest 3.x. The weights file is written by
``models.save_weights`` and read by Keras' own ``load_weights(..., by_name=True, skip_mismatch=True)`` in each.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hpa_utils.system.environment import REPO_ROOT

KAGGLE_KERAS = "3.13.0"

# 02's model (RGBY, 32 px) saved, 03's (64 px, the adapter) built and loaded by name, in the Keras being tested
UPSCALE = """
import sys
from pathlib import Path

import keras
import numpy as np

from hpa_utils import models

expected_version, folder = sys.argv[1], Path(sys.argv[2])
assert keras.__version__ == expected_version, (keras.__version__, expected_version)
keras.utils.set_random_seed(0)
source = models.build_model("efficientnet_lite0", 32, "rgby", "none", dropout=0.1)
for layer in source.layers:
    layer.set_weights([np.random.default_rng(len(layer.name)).random(w.shape).astype("float32") + 0.5
                       for w in layer.get_weights()])
models.set_backbone_trainable(source, False, freeze_batch_norm=False)  # saved frozen: the order is the same
path = models.save_weights(source, folder / "model.h5")
adapter = models.upscale_adapter("efficientnet_lite0", 32, 64)
model = models.build_model("efficientnet_lite0", 64, "rgby", "none", dropout=0.1, adapter=adapter,
                           freeze_batch_norm=True)
model.load_weights(path, by_name=True, skip_mismatch=True)
loaded, new = models.loaded_by_name(model, path)
assert new == ["upscale_adapter"], new
for layer in source.layers:
    for mine, saved in zip(model.get_layer(layer.name).get_weights(), layer.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, saved, err_msg=layer.name)
print(f"keras {keras.__version__}: {len(loaded)} layers loaded by name, new: {new}")
"""


def keras_wheel_folder(version: str, cache: Path) -> Path:
    """Keras ``version`` unpacked from its wheel (pure Python) into ``cache``, downloaded from the registry once."""
    folder = cache / f"keras-{version}"
    if (folder / "keras" / "__init__.py").is_file():
        return folder
    download = cache / "wheels"
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", f"keras=={version}", "-d", download]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        pytest.fail(f"could not download keras {version} from the package registry:\n{result.stderr[-2000:]}")
    (wheel,) = download.glob(f"keras-{version}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder)
    return folder


def run_upscale(version: str, folder: Path, keras_folder: Path | None = None) -> str:
    paths = [str(REPO_ROOT)] + ([str(keras_folder)] if keras_folder else [])
    environment = os.environ | {"PYTHONPATH": os.pathsep.join(paths), "TF_CPP_MIN_LOG_LEVEL": "3"}
    script = folder / "upscale.py"
    script.write_text(UPSCALE)
    result = subprocess.run(
        [sys.executable, str(script), version, str(folder)], capture_output=True, text=True, env=environment
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.integration  # a fresh process per Keras, the older one downloaded once from the package registry
@pytest.mark.parametrize("version", [KAGGLE_KERAS, "installed"])
def test_03_loads_02s_weights_by_name_on_kaggles_keras_and_the_newest(version, tmp_path):
    import keras

    cache = Path(os.environ.get("HPA_TEST_CACHE", Path.home() / ".cache" / "hpa-tests"))
    if version == "installed":
        output = run_upscale(keras.__version__, tmp_path)
    else:
        output = run_upscale(version, tmp_path, keras_wheel_folder(version, cache))
    assert "new: ['upscale_adapter']" in output
