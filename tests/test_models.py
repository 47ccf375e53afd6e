"""Tests of hpa_utils.models with real, tiny Keras models (random weights, 32-128 px)."""

import keras
import numpy as np
import pytest

from hpa_utils import errors, models

LAYER_NAMES = [
    "image",
    "input_scale",
    "input_bn",
    "head_conv",
    "head_flatten",
    "head_dropout_1",
    "head_dense",
    "head_dropout_2",
    "predictions",
]


def own_layer_names(model):
    """build_model's own layers in order (the backbone's layers, each a layer of the model, between input_bn and
    head_conv)."""
    return [layer.name for layer in model.layers if layer not in models.backbone_layers(model)]


def weighted_names(model):
    return [layer.name for layer in model.layers if layer.weights]


def assert_backbone_weights_from(model, source, skip=()):
    """Every weighted layer of the standalone backbone ``source`` has its weights in ``model`` under its name."""
    checked = [layer.name for layer in source.layers if layer.weights and layer.name not in skip]
    assert len(checked) > 10
    for name in checked:
        assert same_weights(model.get_layer(name).get_weights(), source.get_layer(name).get_weights()), name


def random_images(count, size, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, channels), dtype=np.uint8)


def randomize_weights(model, seed=0):
    """Give every weight distinctive random values (positive, so BN variances stay valid)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if not layer.weights:
            continue
        layer.set_weights([(0.5 + rng.random(w.shape) * 0.1).astype("float32") for w in layer.get_weights()])


def layer_weights(model, name):
    return model.get_layer(name).get_weights()


def same_weights(first, second):
    return len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))


def test_build_model_names_shapes_and_input_scaling():
    model = models.build_model("resnet50", image_size=32)
    assert own_layer_names(model) == LAYER_NAMES
    backbone = models.backbone_layers(model)
    assert len(backbone) > 100 and not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.layers.index(backbone[0]) == 3 and backbone[0].name == "conv1_pad"  # right after input_bn
    assert model.input.shape == (None, 32, 32, 3)
    assert model.output.shape == (None, 28)
    assert model.get_layer("head_conv").filters == 32
    assert model.get_layer("head_dense").units == 1024
    assert model.get_layer("head_dropout_1").rate == 0.5
    images = random_images(2, 32)
    from_uint8 = model.predict(images, verbose=0)
    from_float = model.predict(images.astype("float32"), verbose=0)
    assert from_uint8.shape == (2, 28)
    assert np.all((from_uint8 >= 0) & (from_uint8 <= 1))
    np.testing.assert_allclose(from_uint8, from_float, rtol=0, atol=1e-6)
    # 0..255 becomes 0..1 inside the model
    scaled = model.get_layer("input_scale")(np.full((1, 2, 2, 3), 255, np.uint8))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scaled), 1.0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(backbone="vgg16"), "backbone='vgg16' is not supported"),
        (dict(channels="rgbx"), "channels='rgbx' is not supported"),
        (dict(backbone="inceptionv3", image_size=64), "inceptionv3 needs images of at least 75x75"),
        (dict(image_size=16), "resnet50 needs images of at least 32x32"),
        (dict(image_size="224"), "image_size='224' must be an int"),
        (dict(image_size=32, weights="imagenet21k"), "no such file"),
        (dict(image_size=32, weights=3), "expected 'imagenet', 'none' or the path"),
        (dict(image_size=32, dropout=1.5), "dropout=1.5"),
        (dict(image_size=32, adapter=keras.layers.Conv2D(32, 2, name="adapter")), "name it 'upscale_adapter'"),
    ],
)
def test_build_model_rejects_bad_arguments(arguments, message):
    with pytest.raises(errors.InputError, match=message):
        models.build_model(**arguments)


def test_backbone_weights_from_file_and_rgby_first_convolution(tmp_path):
    # A stand-in for Kaggle's resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 (same format).
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    randomize_weights(source, seed=1)
    path = models.save_weights(source, tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")

    rgb = models.build_model("resnet50", 32, weights=str(path))
    assert_backbone_weights_from(rgb, source)

    rgby = models.build_model("resnet50", 32, channels="rgby", weights=str(path))
    assert rgby.input.shape == (None, 32, 32, 4)
    assert own_layer_names(rgby) == LAYER_NAMES
    kernel = rgby.get_layer("conv1_conv").kernel.numpy()
    original = source.get_layer("conv1_conv").kernel.numpy()
    assert kernel.shape == (7, 7, 4, 64)
    np.testing.assert_array_equal(kernel[:, :, :3], original)
    np.testing.assert_array_equal(kernel[:, :, 3], original[:, :, 0])  # yellow copies red
    assert_backbone_weights_from(rgby, source, skip=("conv1_conv",))

    with pytest.raises(models.WeightsError, match="could not load as densenet121"):
        models.build_model("densenet121", 32, weights=str(path))


def test_rgby_model_with_zero_yellow_matches_rgb_model():
    rgb = models.build_model("resnet50", 32)
    rgby = models.rgby_from_rgb(rgb)
    assert [layer.name for layer in rgby.layers] == [layer.name for layer in rgb.layers]
    images = random_images(3, 32)
    zero_yellow = np.concatenate([images, np.zeros_like(images[..., :1])], axis=-1)
    expected = rgb.predict(images, verbose=0)
    np.testing.assert_allclose(rgby.predict(zero_yellow, verbose=0), expected, rtol=0, atol=1e-5)
    bright_yellow = zero_yellow.copy()
    bright_yellow[..., 3] = 255
    assert np.abs(rgby.predict(bright_yellow, verbose=0) - expected).max() > 1e-4
    np.testing.assert_array_equal(
        rgby.get_layer("head_dense").kernel.numpy(), rgb.get_layer("head_dense").kernel.numpy()
    )
    assert rgby.get_layer("input_bn").gamma.shape == (4,)


@pytest.mark.parametrize("source_grid", range(1, 40))
def test_adapter_kernel_size_and_stride_gives_exactly_the_small_grid(source_grid):
    for target_grid in range(1, source_grid + 1):
        kernel_size, stride = models.adapter_kernel_size_and_stride(source_grid, target_grid)
        assert (source_grid - kernel_size) // stride + 1 == target_grid
        assert kernel_size >= stride >= 1  # every position of the large grid is covered


def test_adapter_rejects_a_larger_target_grid():
    with pytest.raises(errors.InputError, match="cannot map 7x7 to the larger 16x16"):
        models.adapter_kernel_size_and_stride(7, 16)
    with pytest.raises(errors.InputError, match="the adapter only shrinks"):
        models.upscale_adapter("resnet50", 128, 64)


def test_feature_grid_and_adapter_for_small_sizes():
    assert [models.feature_grid("resnet50", size) for size in (32, 64, 128)] == [1, 2, 4]
    assert models.upscale_adapter_shape("resnet50", 32, 64) == (2, 2)  # 2 -> 1
    assert models.upscale_adapter_shape("resnet50", 64, 128) == (2, 2)  # 4 -> 2
    model = models.build_model("resnet50", 128, adapter=models.upscale_adapter("resnet50", 64, 128))
    assert own_layer_names(model) == LAYER_NAMES[:4] + ["upscale_adapter"] + LAYER_NAMES[4:]
    assert model.get_layer("upscale_adapter").output.shape[1:3] == (2, 2)
    assert model.get_layer("head_dense").kernel.shape == (2 * 2 * 32, 1024)


@pytest.mark.parametrize(
    "backbone, small_size, large_size, small_grid, large_grid",
    [
        ("resnet50", 224, 512, 7, 16),
        ("inceptionv3", 299, 512, 8, 14),
        ("densenet121", 224, 512, 7, 16),
    ],
)
def test_adapter_for_real_sizes(backbone, small_size, large_size, small_grid, large_grid):
    assert models.feature_grid(backbone, small_size) == small_grid
    assert models.feature_grid(backbone, large_size) == large_grid
    kernel_size, stride = models.upscale_adapter_shape(backbone, small_size, large_size)
    assert (large_grid - kernel_size) // stride + 1 == small_grid
    if backbone == "resnet50":
        assert (kernel_size, stride) == (4, 2)  # the method's 16 -> 7
        model = models.build_model(
            backbone, large_size, adapter=models.upscale_adapter(backbone, small_size, large_size)
        )
        assert model.get_layer("upscale_adapter").output.shape[1:3] == (7, 7)
        assert model.get_layer("head_dense").kernel.shape == (7 * 7 * 32, 1024)


def test_upscale_model_loads_every_layer_but_the_adapter(tmp_path):
    source = models.build_model("resnet50", 64)
    randomize_weights(source, seed=2)
    models.set_backbone_trainable(source, False, freeze_batch_norm=False)  # saved right after a warm-up: frozen
    path = models.save_weights(source, tmp_path / "stage_02" / "model.h5")
    assert not any(layer.trainable for layer in models.backbone_layers(source))  # saving changes no flag

    upscaled = models.build_model("resnet50", 128, adapter=models.upscale_adapter("resnet50", 64, 128))
    adapter_before = layer_weights(upscaled, "upscale_adapter")
    matched = models.transfer_weights(upscaled, path)
    assert matched == weighted_names(source) and matched[0] == "input_bn" and len(matched) > 50
    for name in matched:
        assert same_weights(layer_weights(upscaled, name), layer_weights(source, name)), name
    np.testing.assert_array_equal(
        upscaled.get_layer("head_dense").kernel.numpy(), source.get_layer("head_dense").kernel.numpy()
    )
    assert same_weights(layer_weights(upscaled, "upscale_adapter"), adapter_before)

    # Keras' own by-name loading reads the file into a model frozen in any way: each layer's weights are its own
    for frozen in (True, False):
        plain = models.build_model(
            "resnet50", 128, adapter=models.upscale_adapter("resnet50", 64, 128), freeze_batch_norm=frozen
        )
        plain.load_weights(path, by_name=True, skip_mismatch=True)
        for name in matched:
            assert same_weights(layer_weights(plain, name), layer_weights(source, name)), name


def test_transfer_weights_raises_when_names_do_not_match(tmp_path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, name="stem")(inputs)
    x = keras.layers.Flatten(name="flat")(x)
    other = keras.Model(inputs, keras.layers.Dense(28, name="scores")(x))
    path = models.save_weights(other, tmp_path / "other.h5")
    target = models.build_model("resnet50", 32)
    with pytest.raises(models.WeightsError, match=r"other.h5: layers \['input_bn', 'conv1_conv'.*got no weights"):
        models.transfer_weights(target, path)

    # the same architecture with other layer names: Keras alone would load nothing, silently
    renamed = models.build_model("resnet50", 32)
    for layer in renamed.layers:
        layer.name = "renamed_" + layer.name
    renamed_path = models.save_weights(renamed, tmp_path / "renamed.h5")
    with pytest.raises(models.WeightsError, match="got no weights"):
        models.transfer_weights(target, renamed_path)


def test_weights_file_problems_are_clear(tmp_path):
    model = models.build_model("resnet50", 32)
    with pytest.raises(models.WeightsError, match="missing.h5: weights file not found"):
        models.transfer_weights(model, tmp_path / "missing.h5")
    with pytest.raises(models.WeightsError, match="must end in .h5 or .hdf5 but not .weights.h5"):
        models.save_weights(model, tmp_path / "model.weights.h5")
    model.save_weights(tmp_path / "keras3.weights.h5")
    (tmp_path / "keras3.h5").write_bytes((tmp_path / "keras3.weights.h5").read_bytes())
    with pytest.raises(models.WeightsError, match="not a legacy Keras .h5 weights file"):
        models.transfer_weights(model, tmp_path / "keras3.h5")
    (tmp_path / "broken.h5").write_text("not hdf5")
    with pytest.raises(models.WeightsError, match="broken.h5: cannot read as HDF5"):
        models.transfer_weights(model, tmp_path / "broken.h5")


def test_load_weights_reloads_the_same_architecture(tmp_path):
    source = models.build_model("resnet50", 32)
    randomize_weights(source, seed=3)
    images = random_images(2, 32)
    expected = source.predict(images, verbose=0)
    source.save_weights(tmp_path / "best.weights.h5")
    models.save_weights(source, tmp_path / "model.h5")
    for name in ("best.weights.h5", "model.h5"):
        model = models.build_model("resnet50", 32)
        loaded = models.load_weights(model, tmp_path / name)
        assert loaded == weighted_names(source)
        np.testing.assert_allclose(model.predict(images, verbose=0), expected, rtol=0, atol=1e-6)
    bigger = models.build_model("resnet50", 64)
    with pytest.raises(models.WeightsError, match="head_dense"):
        models.load_weights(bigger, tmp_path / "model.h5")


def test_set_backbone_trainable_keeps_pretrained_backbone_batch_norm_frozen():
    model = models.build_model("resnet50", 32, freeze_batch_norm=True)  # as with pretrained weights
    backbone = models.backbone_layers(model)
    batch_norms = [layer for layer in backbone if isinstance(layer, keras.layers.BatchNormalization)]
    assert batch_norms and not any(layer.trainable for layer in batch_norms)
    models.set_backbone_trainable(model, False, freeze_batch_norm=True)
    assert not any(layer.trainable_weights for layer in backbone)
    assert model.get_layer("input_bn").trainable and model.get_layer("head_dense").trainable
    models.set_backbone_trainable(model, True, freeze_batch_norm=True)
    assert model.get_layer("conv1_conv").trainable
    trainable_paths = {variable.path for layer in backbone for variable in layer.trainable_weights}
    assert "conv1_conv/kernel" in trainable_paths
    assert not any(layer.trainable for layer in batch_norms)
    assert not any("_bn/" in path for path in trainable_paths)


def test_backbone_from_scratch_trains_its_batch_norm_quickly_and_pretrained_keeps_it_frozen(tmp_path):
    scratch = models.build_model("resnet50", 32, "rgby", "none")
    batch_norms = [
        layer for layer in models.backbone_layers(scratch) if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert batch_norms and all(layer.trainable and layer.momentum == 0.9 for layer in batch_norms)
    models.set_backbone_trainable(scratch, False, freeze_batch_norm=False)
    models.set_backbone_trainable(scratch, True, freeze_batch_norm=False)
    assert all(layer.trainable for layer in batch_norms)
    frozen = models.build_model("resnet50", 32, "rgb", "none", freeze_batch_norm=True)
    models.set_backbone_trainable(frozen, True, freeze_batch_norm=True)
    assert not any(
        layer.trainable
        for layer in models.backbone_layers(frozen)
        if isinstance(layer, keras.layers.BatchNormalization)
    )


@pytest.mark.parametrize("preset", ["smoke", "demo", "full"])
def test_adapter_gives_the_small_grid_for_each_preset(preset):
    from hpa_utils.stages import parameters

    loaded = parameters.load_preset(preset)
    source, upscale = (
        parameters.stage_values(loaded, stage, parameters.declared(stage))
        for stage in ("02_warmup_finetune", "03_upscale")
    )
    backbone, small, large = source["BACKBONE"], source["IMAGE_SIZE"], upscale["IMAGE_SIZE"]
    kernel_size, stride = models.upscale_adapter_shape(backbone, small, large)
    small_grid, large_grid = models.feature_grid(backbone, small), models.feature_grid(backbone, large)
    assert (large_grid - kernel_size) // stride + 1 == small_grid
    if backbone == "small":
        model = models.build_model(backbone, large, "rgby", adapter=models.upscale_adapter(backbone, small, large))
        assert model.get_layer("upscale_adapter").output.shape[1:3] == (small_grid, small_grid)


def test_small_backbone_has_the_same_head_rgby_rule_and_weights_file(tmp_path):
    model = models.build_model("small", 64, "rgb")
    assert own_layer_names(model) == LAYER_NAMES
    assert [models.feature_grid("small", size) for size in (32, 64, 96)] == [2, 4, 6]
    assert model.get_layer("head_dense").kernel.shape == (4 * 4 * 32, 1024)
    rgby = models.rgby_from_rgb(model)
    images = random_images(2, 64)
    zero_yellow = np.concatenate([images, np.zeros_like(images[..., :1])], axis=-1)
    np.testing.assert_allclose(
        rgby.predict(zero_yellow, verbose=0), model.predict(images, verbose=0), rtol=0, atol=1e-5
    )

    backbone = models.small_cnn(input_shape=(64, 64, 3))
    randomize_weights(backbone, seed=3)
    path = models.save_weights(backbone, tmp_path / "small_backbone.h5")
    loaded = models.build_model("small", 64, "rgby", weights=str(path))
    kernel = loaded.get_layer("block1_conv1").kernel.numpy()
    np.testing.assert_array_equal(kernel[:, :, :3], backbone.get_layer("block1_conv1").kernel.numpy())
    np.testing.assert_array_equal(kernel[:, :, 3], kernel[:, :, 0])  # yellow copies red
    with pytest.raises(models.WeightsError, match="the small backbone has none"):
        models.build_model("small", 64, weights="imagenet")


def test_input_statistics_come_from_the_images_and_stay_through_a_short_run():
    # Real HPA channels average ~0.06 of full scale. input_bn's moving statistics start at (0, 1); set from
    # the images, inference mode scales images as training mode does from the first step.
    rng = np.random.default_rng(0)
    images = np.clip(rng.normal(16, 10, (16 * 20, 32, 32, 3)), 0, 255).astype(np.uint8)
    pixels = images.reshape(-1, 3) / 255.0
    model = models.build_model("small", 32)
    mean, variance = models.set_input_statistics(model, images, indices=np.arange(len(images)), max_images=10_000)
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(variance, pixels.var(axis=0), rtol=1e-6)
    input_bn = model.get_layer("input_bn")
    np.testing.assert_allclose(input_bn.moving_variance.numpy(), pixels.var(axis=0), rtol=1e-5)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(images, rng.integers(0, 2, (len(images), 28)).astype("float32"), batch_size=16, epochs=1, verbose=0)
    np.testing.assert_allclose(input_bn.moving_variance.numpy(), pixels.var(axis=0), rtol=0.1)
    np.testing.assert_allclose(input_bn.moving_mean.numpy(), pixels.mean(axis=0), rtol=0.05)
    with pytest.raises(errors.InputError, match="images have 3 channels but the model takes 4"):
        models.set_input_statistics(models.build_model("small", 32, "rgby"), images)


def test_on_kaggle_a_weights_file_name_is_found_in_any_attached_dataset(tmp_path, monkeypatch):
    backbone = models.small_cnn(input_shape=(32, 32, 3))
    randomize_weights(backbone, seed=4)
    deep = tmp_path / "input" / "datasets" / "someone" / "pretrained" / "1"
    deep.mkdir(parents=True)
    models.save_weights(backbone, deep / "small_backbone.h5")
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setenv("HPA_KAGGLE_INPUT", str(tmp_path / "input"))
    model = models.build_model("small", 32, "rgb", weights="small_backbone.h5")
    assert_backbone_weights_from(model, backbone)
    with pytest.raises(
        models.WeightsError,
        match=r"(?s)weights 'resnet50_weights_tf_dim_ordering_tf_kernels_notop"
        r"\.h5': no such file, and no file named .*Add the dataset.*"
        r"holds:\n  datasets/\n    someone/",
    ):
        models.build_model("resnet50", 32, weights="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")


@pytest.mark.parametrize(
    "setting, weights, upstream, frozen",
    [
        ("auto", "backbone.h5", None, True),  # pretrained: kept, as keras.io fine-tunes
        ("auto", "none", None, False),  # random weights have no statistics to keep
        ("auto", "none", True, True),  # a stage starting from another keeps that stage's choice
        ("auto", "backbone.h5", False, False),
        ("yes", "none", None, True),
        ("no", "imagenet", True, False),  # a setting other than auto wins over the upstream stage
    ],
)
def test_freeze_batch_norm_setting(setting, weights, upstream, frozen):
    assert models.batch_norm_frozen(setting, weights, upstream=upstream) is frozen


def test_freeze_batch_norm_rejects_other_settings():
    with pytest.raises(errors.InputError, match=r"FREEZE_BATCH_NORM='true' is not supported; choose one of \('auto'"):
        models.batch_norm_frozen("true", "none")


@pytest.mark.parametrize("frozen", [True, False])
def test_a_pretrained_backbone_keeps_or_trains_its_batch_norm_statistics_as_chosen(frozen, tmp_path):
    path = models.save_weights(models.small_cnn(input_shape=(32, 32, 3)), tmp_path / "backbone.h5")
    model = models.build_model("small", 32, "rgb", str(path), dropout=0.0, freeze_batch_norm=frozen)
    layer = model.get_layer("block1_bn1")
    before = layer.moving_mean.numpy().copy()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    images = np.random.default_rng(0).integers(0, 255, (16, 32, 32, 3)).astype("uint8")
    model.fit(images, np.zeros((16, 28), "float32"), batch_size=8, epochs=1, verbose=0)
    moved = not np.allclose(layer.moving_mean.numpy(), before)
    assert moved is not frozen, "frozen: the statistics stay; training: they follow the batches"
    assert layer.trainable is not frozen
