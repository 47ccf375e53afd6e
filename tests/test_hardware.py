"""Hardware: CPU replicas mirrored as GPUs would be, the precision policy, and weights across policies."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from hpa_utils import errors, models
from hpa_utils.system import environment, hardware
from hpa_utils.training import fitting

REPO = environment.REPO_ROOT

# One process per replica count: TensorFlow's devices are fixed once it runs. The script loads the same
# weights file, predicts with TTA, evaluates loss and F1 through Keras (summed over replicas), trains one
# epoch through a distributed tf.data pipeline and saves the result by name.
REPLICA_SCRIPT = """
import json, sys
import numpy as np
from hpa_utils.system import hardware
from hpa_utils.training import fitting, inputs
from hpa_utils import models
from hpa_utils.results import predict
weights, data, out = sys.argv[1:4]
machine = hardware.prepare("off", batch_size=8)
with machine.scope():
    model = models.build_model("small", 32, "rgby", "none", dropout=0.1)
models.transfer_weights(model, weights)
fitting.compile_model(model, 1e-3)
arrays = np.load(data)
images, targets = arrays["images"], arrays["targets"]
probabilities = predict.predict_tta(model, images, views=4, batch_size=8, progress=False)
scores = model.evaluate(inputs.make_dataset(images, targets, 8), verbose=0, return_dict=True)
small = inputs.make_dataset(images, targets, 16, indices=range(9), replicas=machine.replicas)  # fewer than a batch
scores |= {"small_" + name: value for name, value in model.evaluate(small, verbose=0, return_dict=True).items()}
model.fit(inputs.make_dataset(images, targets, 8, shuffle=True, augmentation="dihedral", seed=0), epochs=1, verbose=0)
models.save_weights(model, out + ".h5")
np.save(out + ".npy", probabilities)
json.dump({**scores, **machine.record(), "description": machine.description}, open(out + ".json", "w"))
"""


@pytest.fixture()
def policy():
    """Restore Keras' global precision policy after a test that changes it."""
    before = keras.mixed_precision.global_policy().name
    yield
    keras.mixed_precision.set_global_policy(before)


def test_cpu_replicas_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("HPA_CPU_REPLICAS", raising=False)
    assert environment.cpu_replicas() == 1
    monkeypatch.setenv("HPA_CPU_REPLICAS", " 2 ")
    assert environment.cpu_replicas() == 2
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("HPA_CPU_REPLICAS", bad)
        with pytest.raises(errors.InputError, match=f"HPA_CPU_REPLICAS='{bad}': expected a whole number"):
            environment.cpu_replicas()


@pytest.mark.parametrize(
    "setting, capabilities, expected",
    [
        ("auto", [], "float32"),  # the CPU
        ("auto", [(6, 0)], "float32"),  # P100: no tensor cores
        ("auto", [(7, 5), (7, 5)], "mixed_float16"),  # Kaggle's T4 x2
        ("auto", [(8, 0)], "mixed_float16"),
        ("auto", [(7, 5), (6, 1)], "float32"),  # every GPU must have them
        ("on", [], "mixed_float16"),
        ("off", [(9, 0)], "float32"),
    ],
)
def test_the_precision_policy_follows_the_setting_and_the_gpus(setting, capabilities, expected):
    assert hardware.choose_precision(setting, capabilities) == expected
    assert hardware.choose_precision(setting, [], tpu=True) == "float32" if setting == "off" else "mixed_bfloat16"


def test_an_unknown_precision_setting_is_refused():
    with pytest.raises(errors.InputError, match="MIXED_PRECISION='yes' is not supported; choose one of"):
        hardware.choose_precision("yes", [])


def test_this_machine_gets_one_replica_and_float32_by_default(policy, monkeypatch):
    monkeypatch.delenv("HPA_CPU_REPLICAS", raising=False)
    machine = hardware.prepare("auto", batch_size=7)
    assert isinstance(machine.strategy, tf.distribute.Strategy)
    if not tf.config.list_logical_devices("GPU"):
        assert machine.record() == {
            "backend": "tensorflow",
            "device_kind": "CPU",
            "devices": 1,
            "replicas": 1,
            "strategy": "default",
            "precision_policy": "float32",
        }
        assert str(machine) == "default strategy, CPU; precision policy float32"
    assert keras.mixed_precision.global_policy().name == machine.precision_policy


def test_mixed_precision_keeps_the_output_and_loss_float32_and_scales_the_loss(policy):
    hardware.prepare("on")
    model = fitting.compile_model(models.build_model("small", 32, "rgby", "none"), 1e-3)
    assert model.get_layer("head_dense").compute_dtype == "float16"
    assert model.get_layer("head_dense").kernel.dtype == "float32"  # weights stay float32
    assert model.output.dtype == "float32" and model.get_layer("predictions").compute_dtype == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    images = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 4), dtype=np.uint8)
    history = model.fit(images, np.eye(28, dtype="float32")[:8], batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("first, second", [("on", "off"), ("off", "on")])
def test_a_stages_weights_load_by_name_into_the_next_whatever_either_policy(tmp_path, policy, first, second):
    """As 02 (at 32 px) -> 03 (at 64 px, with the adapter), the policy switched between them."""
    images = np.random.default_rng(1).integers(0, 255, (16, 32, 32, 4), dtype=np.uint8)
    hardware.prepare(first)
    model = fitting.compile_model(models.build_model("small", 32, "rgby", "none", dropout=0.1), 1e-3)
    model.fit(images, np.eye(28, dtype="float32")[:16], batch_size=8, epochs=1, verbose=0)
    models.save_weights(model, tmp_path / "02.h5")
    before = model.predict(images, verbose=0)

    hardware.prepare(second)
    same_size = models.build_model("small", 32, "rgby", "none", dropout=0.1)
    models.transfer_weights(same_size, tmp_path / "02.h5", allowed_new=())  # every layer from the file
    np.testing.assert_allclose(same_size.predict(images, verbose=0), before, atol=5e-3)  # float16 rounding
    larger = models.build_model(
        "small", 64, "rgby", "none", dropout=0.1, adapter=models.upscale_adapter("small", 32, 64)
    )
    matched = models.transfer_weights(larger, tmp_path / "02.h5")
    assert set(matched) == {layer.name for layer in larger.layers if layer.weights} - {models.ADAPTER_NAME}
    assert larger.get_layer("head_dense").compute_dtype == ("float16" if second == "on" else "float32")


def test_a_batch_the_replicas_do_not_divide_is_refused(tmp_path):
    script = "from hpa_utils.system import hardware; hardware.prepare('off', batch_size=7)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "HPA_CPU_REPLICAS": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "BATCH_SIZE=7 is the batch of all 2 devices together; make it a multiple of 2" in result.stderr


@pytest.mark.integration  # two processes import TensorFlow and train a small model for an epoch
def test_two_cpu_replicas_predict_and_score_as_one_device_does(tmp_path, policy):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 255, (44, 32, 32, 4), dtype=np.uint8)  # 44: the last batch is uneven (4 of 8)
    targets = (rng.random((44, 28)) < 0.15).astype("float32")
    targets[:, 0] = 1.0
    np.savez(tmp_path / "data.npz", images=images, targets=targets)
    hardware.prepare("off")
    start = models.build_model("small", 32, "rgby", "none", dropout=0.1)
    models.set_input_statistics(start, images)
    models.save_weights(start, tmp_path / "start.h5")

    results = {}
    for replicas in (1, 2):
        out = tmp_path / f"replicas{replicas}"
        result = subprocess.run(
            [sys.executable, "-c", REPLICA_SCRIPT, str(tmp_path / "start.h5"), str(tmp_path / "data.npz"), str(out)],
            cwd=REPO,
            env={**os.environ, "HPA_CPU_REPLICAS": str(replicas)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        results[replicas] = (json.loads(out.with_suffix(".json").read_text()), np.load(out.with_suffix(".npy")))
    (one, one_probabilities), (two, two_probabilities) = results[1], results[2]
    assert (one["replicas"], one["strategy"]) == (1, "default")
    assert (two["replicas"], two["strategy"]) == (2, "MirroredStrategy")
    assert two["description"] == "MirroredStrategy, 2 CPU replicas (HPA_CPU_REPLICAS)"
    np.testing.assert_allclose(two_probabilities, one_probabilities, atol=1e-5)
    for name in ("loss", "f1", "binary_accuracy", "small_loss", "small_f1"):  # Keras' metrics, over the replicas
        assert two[name] == pytest.approx(one[name], abs=1e-5), name
    assert 0 < one["f1"] < 1  # a score that can differ
    trained = models.build_model("small", 32, "rgby", "none", dropout=0.1)
    matched = models.transfer_weights(trained, tmp_path / "replicas2.h5")  # a model trained mirrored loads by name
    assert set(matched) == {layer.name for layer in trained.layers if layer.weights}
