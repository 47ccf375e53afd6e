"""Keras' JAX backend, as Kaggle's TPU v5e-8 runs it, on devices JAX simulates on the CPU: the same weights giving the
same predictions on both backends, weights crossing backends by name, and every held-out image counted once when the
devices do not divide the images. (The smoke pipeline on JAX over four devices: the TPU export's kernels,
tests/test_kaggle_simulation.py.)"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hpa_utils.system import environment

# slow: TensorFlow and JAX in fresh processes (one backend per process)
pytestmark = pytest.mark.integration
REPO = environment.REPO_ROOT
FOUR_DEVICES = {"KERAS_BACKEND": "jax", "JAX_NUM_CPU_DEVICES": "4"}
ONE_DEVICE = {"KERAS_BACKEND": "tensorflow"}

# One backend per process. "save" trains the small model one epoch (on 8 images) and saves it by name; "load"
# loads such a file by name. Both then predict 9 images (4 views, batches of 8: under JAX the last batch of 1 is
# padded to 8, one compiled shape) and, on several devices, list which held-out rows the validation batches carry
# with weight 1.
SCRIPT = """
import json, sys
import numpy as np
from hpa_utils.system import hardware
from hpa_utils.training import fitting, inputs
from hpa_utils import models
from hpa_utils.results import predict
mode, weights, out = sys.argv[1:4]
machine = hardware.prepare("off", batch_size=4)
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (9, 32, 32, 4), dtype=np.uint8)
targets = (rng.random((9, 28)) < 0.2).astype("float32")
with machine.scope():
    model = models.build_model("small", 32, "rgby", "none", dropout=0.1)
if mode == "save":
    models.set_input_statistics(model, images)
    fitting.compile_model(model, 1e-2)
    model.fit(inputs.make_dataset(images, targets, 4, shuffle=True, replicas=machine.replicas), epochs=1, verbose=0)
    models.save_weights(model, weights)
else:
    models.transfer_weights(model, weights, allowed_new=())
np.save(out + ".npy", predict.predict_tta(model, images, views=4, batch_size=8, progress=False))
held_out = inputs.make_dataset(images, targets, 4, indices=np.arange(9), replicas=machine.replicas)
batches = [[np.asarray(part) for part in batch] for batch in held_out]
counted = [float(weight) for batch in batches if len(batch) == 3 for weight in batch[2]]
json.dump({**machine.record(), "batch_sizes": [len(batch[0]) for batch in batches], "weights": counted},
          open(out + ".json", "w"))
"""


def run_script(mode: str, weights, out, variables: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(weights), str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **variables},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(open(f"{out}.json").read()) | {"probabilities": np.load(f"{out}.npy")}


@pytest.mark.parametrize(
    "trained_on, loaded_on", [(ONE_DEVICE, FOUR_DEVICES), (FOUR_DEVICES, ONE_DEVICE)], ids=["tf to jax", "jax to tf"]
)
def test_the_same_weights_predict_the_same_on_both_backends_load_by_name_across_and_count_each_image_once(
    trained_on, loaded_on, tmp_path
):
    weights = tmp_path / "trained.h5"
    trained = run_script("save", weights, tmp_path / "trained", trained_on)
    loaded = run_script("load", weights, tmp_path / "loaded", loaded_on)
    assert {trained["backend"], loaded["backend"]} == {"tensorflow", "jax"}
    assert trained["probabilities"].shape == loaded["probabilities"].shape == (9, 28)  # every image, once
    np.testing.assert_allclose(loaded["probabilities"], trained["probabilities"], atol=1e-4)
    on_four = trained if trained["backend"] == "jax" else loaded
    # on four devices the held-out batches pad to whole shares and count each image once
    assert (on_four["backend"], on_four["devices"], on_four["strategy"]) == ("jax", 4, "DataParallel")
    assert on_four["batch_sizes"] == [4, 4, 4]  # 9 images: 4 + 4 + 1, the last padded to the 4 devices
    assert on_four["weights"] == [1.0] * 9 + [0.0] * 3  # the padding counts for nothing
