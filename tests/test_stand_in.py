"""The pretrained stand-ins: source tasks without the 28 labels, notop files that load as an ImageNet file does."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpa_utils import atomic_files, environment, models, parameters
from hpa_utils.models.backbones import small_cnn
from hpa_utils.stand_in import fields, pretrain, structures
from hpa_utils.synthetic import render_sample_and_field

DATA = environment.REPO_ROOT / "hpa_utils" / "data"
CHECKED_IN = sorted(DATA.glob("stand_in_*.h5"))


def stored_layers(path) -> dict:
    """Layer name -> arrays of a legacy (Keras 2 style) weights file, as Keras' notop files are written."""
    with h5py.File(path, "r") as file:
        group = file["model_weights"] if "model_weights" in file else file
        return {
            name.decode() if isinstance(name, bytes) else name: [
                np.asarray(group[name][weight]) for weight in group[name].attrs["weight_names"]
            ]
            for name in group.attrs["layer_names"]
        }


def test_the_field_targets_do_not_depend_on_the_labels():
    # the same random stream with other labels: other green pictures, the very same field (the source targets)
    _, field = render_sample_and_field([0], 64, np.random.default_rng(5))
    channels, other_field = render_sample_and_field([25, 3, 16], 64, np.random.default_rng(5))
    assert field == other_field
    plain, _ = render_sample_and_field([0], 64, np.random.default_rng(5))
    assert not np.array_equal(plain["green"], channels["green"])
    image, targets = pretrain.source_sample(pretrain.TASKS["fields"], 3, seed=1, image_size=32)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and targets.shape == (6,)
    assert len(fields.TARGETS) == 6 and not any("green" in name for name in fields.TARGETS)


def test_a_structure_image_holds_exactly_its_classes():
    rng = np.random.default_rng(0)
    for _ in range(20):
        image, target = structures.structures_sample(rng, 128)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert 1 <= target.sum() <= 4 and set(np.unique(target)) <= {0.0, 1.0}
    assert len(structures.CLASSES) == 30 == len(set(structures.CLASSES))
    side = 256
    for family in structures.FAMILIES:  # every family draws something, and a larger scale draws more of it
        small, large = (
            np.mean(
                [
                    structures.draw_structure(family, share * side, side, np.random.default_rng(seed)).sum()
                    for seed in range(8)
                ]
            )
            for share in (structures.SCALES["small"], structures.SCALES["large"])
        )
        assert 0 < small < large, family


def test_the_structures_task_never_reads_the_labels_or_the_generator():
    source = (environment.REPO_ROOT / "hpa_utils" / "stand_in" / "structures.py").read_text()
    assert "synthetic" not in source and "labels" not in source.split('"""')[-1]


@pytest.mark.parametrize("task", ["structures", "fields"])
def test_a_tiny_pretrain_run_writes_a_file_that_loads_into_build_model(task, tmp_path):
    out = tmp_path / "tiny_pretrained.h5"
    result = subprocess.run(
        [sys.executable, "-m", "hpa_utils", "pretrain", "--task", task, "--out", str(out), "--images", "40"]
        + ["--size", "32", "--epochs", "1"],
        cwd=environment.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    provenance = atomic_files.read_json(out.with_suffix(".json"))
    assert provenance["images"] == 40 and provenance["epochs"] == 1 and provenance["task"] == task
    assert set(provenance["validation_scores"]) == set(pretrain.TASKS[task].targets)
    assert provenance["machine"] == environment.cpu_description()
    model = models.build_model("small", 32, "rgby", str(out))  # the code path an offline ImageNet file takes
    backbone = model.get_layer("backbone")
    stored = stored_layers(out)
    for name in ("block2_conv1", "block4_conv2", "block3_bn2"):
        for loaded, saved in zip(backbone.get_layer(name).get_weights(), stored[name]):
            np.testing.assert_array_equal(loaded, saved)
    first = backbone.get_layer("block1_conv1").get_weights()[0]  # widened for yellow: a copy of red
    np.testing.assert_array_equal(first[:, :, :3], stored["block1_conv1"][0])
    np.testing.assert_array_equal(first[:, :, 3], stored["block1_conv1"][0][:, :, 0])


def test_pretrain_refuses_a_keras_3_weights_name_and_an_unknown_task(tmp_path):
    with pytest.raises(ValueError, match="ends in .h5"):
        pretrain.pretrain(tmp_path / "out.weights.h5", images=20, size=16, epochs=1)
    with pytest.raises(ValueError, match="--task 'imagenet': choose one of structures, fields"):
        pretrain.pretrain(tmp_path / "out.h5", task="imagenet", images=20, size=16, epochs=1)


@pytest.mark.parametrize("path", CHECKED_IN, ids=lambda path: path.stem)
def test_a_checked_in_file_loads_with_every_backbone_layer_matched(path):
    assert path.stat().st_size < 5_000_000
    provenance = atomic_files.read_json(path.with_suffix(".json"))
    assert {"command", "task", "commit", "images", "epochs", "seconds", "validation_scores"} <= set(provenance)
    backbone = small_cnn(weights=str(path), input_shape=(64, 64, 3))  # Keras' own load, as for ImageNet
    weighted = [layer.name for layer in backbone.layers if layer.weights]
    stored = stored_layers(path)
    assert weighted == [name for name, arrays in stored.items() if arrays]
    for name in weighted:
        for loaded, saved in zip(backbone.get_layer(name).get_weights(), stored[name]):
            np.testing.assert_array_equal(loaded, saved)


def test_the_demo_starts_01_and_02_from_a_checked_in_stand_in():
    preset = parameters.load_preset("demo")
    for stage in ("01_baseline", "02_warmup_finetune"):
        weights = parameters.stage_values(preset, stage, parameters.declared(stage))["WEIGHTS"]
        assert (environment.REPO_ROOT / "notebooks" / weights).resolve() in [path.resolve() for path in CHECKED_IN]
