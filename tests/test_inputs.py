"""tf.data pipelines over uint8 arrays: dtypes, shapes, image/target pairing, epochs, augmentation (the views
training sees, and the figure of them), fit()."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from hpa_utils import errors  # noqa: E402
from hpa_utils.results import plots  # noqa: E402
from hpa_utils.training import augment, inputs  # noqa: E402

IMAGE_SIZE = 16


def indexed_samples(count, channels=4):
    """Images whose pixels all equal their index (mod 256) and targets whose first columns encode it too."""
    images = np.broadcast_to(
        (np.arange(count) % 256).astype(np.uint8)[:, None, None, None], (count, IMAGE_SIZE, IMAGE_SIZE, channels)
    ).copy()
    targets = np.zeros((count, 28), np.float32)
    targets[:, 0] = np.arange(count)
    targets[np.arange(count), 1 + np.arange(count) % 27] = 1.0
    return images, targets


def collect(dataset):
    return [tuple(np.asarray(part) for part in element) for element in dataset]


def test_batches_without_shuffle_equal_the_source_arrays():
    images, targets = indexed_samples(10)
    batches = collect(inputs.make_dataset(images, targets, batch_size=4))
    assert [len(batch_images) for batch_images, _ in batches] == [4, 4, 2]
    for batch_images, batch_targets in batches:
        assert batch_images.dtype == np.uint8 and batch_images.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 4)
        assert batch_targets.dtype == np.float32 and batch_targets.shape[1:] == (28,)
    np.testing.assert_array_equal(np.concatenate([batch for batch, _ in batches]), images)
    np.testing.assert_array_equal(np.concatenate([batch for _, batch in batches]), targets)


def test_static_shapes_are_known():
    images, targets = indexed_samples(10)
    image_spec, target_spec = inputs.make_dataset(images, targets, batch_size=4).element_spec
    assert image_spec.shape.as_list() == [None, IMAGE_SIZE, IMAGE_SIZE, 4] and image_spec.dtype == tf.uint8
    assert target_spec.shape.as_list() == [None, 28] and target_spec.dtype == tf.float32
    only_images = inputs.make_dataset(images, batch_size=4, augmentation="dihedral").element_spec
    assert only_images.shape.as_list() == [None, IMAGE_SIZE, IMAGE_SIZE, 4]


@pytest.mark.parametrize("augmentation", ["none", "dihedral"])
def test_cardinality_counts_the_batches(augmentation):
    images, targets = indexed_samples(10)
    dataset = inputs.make_dataset(images, targets, batch_size=4, augmentation=augmentation)
    assert int(dataset.cardinality()) == 3 == len(list(dataset))  # 10 images in 4s: the short last batch too


@pytest.mark.parametrize("augmentation", ["none", "strong"])
def test_shuffle_keeps_pairs_and_visits_every_sample_once_per_epoch(augmentation):
    images, targets = indexed_samples(23)
    dataset = inputs.make_dataset(images, targets, batch_size=5, shuffle=True, augmentation=augmentation, seed=3)
    orders = []
    for _ in range(2):  # two epochs
        order = []
        for batch_images, batch_targets in collect(dataset):
            indices = batch_targets[:, 0].astype(int)
            np.testing.assert_array_equal(batch_targets, targets[indices])
            if augmentation == "none":
                np.testing.assert_array_equal(batch_images, images[indices])
            order += indices.tolist()
        assert sorted(order) == list(range(23))
        orders.append(order)
    assert orders[0] != list(range(23)) and orders[0] != orders[1]  # shuffled, and again next epoch
    again = inputs.make_dataset(images, targets, batch_size=5, shuffle=True, augmentation=augmentation, seed=3)
    assert [batch[:, 0].astype(int).tolist() for _, batch in collect(again)] == [
        orders[0][start : start + 5] for start in range(0, 23, 5)
    ]  # the same seed gives the same first epoch


def test_dihedral_augmentation_keeps_shape_dtype_and_pixel_content():
    images = np.random.default_rng(0).integers(0, 256, (9, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    batches = [np.asarray(batch) for batch in inputs.make_dataset(images, batch_size=4, augmentation="dihedral")]
    augmented = np.concatenate(batches)
    assert augmented.shape == images.shape and augmented.dtype == np.uint8
    for original, result in zip(images, augmented):  # a rotation/flip moves pixels, it doesn't change them
        np.testing.assert_array_equal(np.sort(original, axis=None), np.sort(result, axis=None))
    assert not np.array_equal(augmented, images)


@pytest.mark.parametrize("augmentation", ["dihedral", "strong"])
def test_augmentation_is_reproducible_per_seed_and_differs_between_epochs(augmentation):
    images = np.random.default_rng(1).integers(0, 256, (6, IMAGE_SIZE, IMAGE_SIZE, 4), dtype=np.uint8)

    def epochs(seed):
        dataset = inputs.make_dataset(images, batch_size=3, augmentation=augmentation, seed=seed)
        return [np.concatenate([np.asarray(batch) for batch in dataset]) for _ in range(2)]

    first_run, second_run, other_seed = epochs(5), epochs(5), epochs(6)
    np.testing.assert_array_equal(first_run[0], second_run[0])
    np.testing.assert_array_equal(first_run[1], second_run[1])
    assert not np.array_equal(first_run[0], first_run[1])
    assert not np.array_equal(first_run[0], other_seed[0])


def asymmetric_images(count, channels=4):
    """Images without rotational or mirror symmetry (their 8 dihedral views differ), each with its own values."""
    values = np.arange(IMAGE_SIZE * IMAGE_SIZE * channels).reshape(IMAGE_SIZE, IMAGE_SIZE, channels) % 251
    return np.stack([(values + 3 * index) % 256 for index in range(count)]).astype(np.uint8)


def group_views(image):
    """The 8 dihedral views of one HWC image, by the one definition of the group (``inputs.dihedral_tf``)."""
    return [inputs.dihedral_tf(image, index).numpy() for index in range(augment.DIHEDRAL_VIEWS)]


def view_indices(originals, augmented):
    """For each augmented image, the k (0..7) with dihedral_tf(original, k) equal to it; fails if none."""
    found = []
    for original, result in zip(originals, augmented):
        matches = [index for index, view in enumerate(group_views(original)) if np.array_equal(view, result)]
        assert len(matches) == 1, "not one of dihedral_tf's 8 views"
        found.append(matches[0])
    return found


def test_the_pipelines_dihedral_views_are_each_one_of_the_8_and_all_occur():
    images = asymmetric_images(10)
    dataset = inputs.make_dataset(images, batch_size=4, shuffle=False, augmentation="dihedral", seed=2)
    in_graph = []
    for _ in range(12):  # 120 draws: every view occurs (each is missed with probability (7/8)^120, ~1e-7)
        in_graph += view_indices(images, np.concatenate([np.asarray(batch) for batch in dataset]))
    assert set(in_graph) == set(range(8))
    assert min(np.bincount(in_graph)) >= 5  # roughly uniform (15 each expected)


def two_spots(size=48):
    """An image whose orientation survives strong's affine: a spot in channel 0 and one in channel 1, the
    vector between them 21.8 degrees off the rows, so that its 8 dihedral images lie 43.6 degrees or more apart."""
    image = np.zeros((size, size, 4), np.uint8)
    image[18:23, 14:19, 0] = 200  # centre (20, 16)
    image[24:29, 29:34, 1] = 200  # centre (26, 31): the vector (6, 15)
    return image


def spot_vector(image):
    """The vector (rows, columns) from channel 0's centre of brightness to channel 1's."""
    rows, columns = np.indices(image.shape[:2])

    def centre(channel):
        weights = image[..., channel].astype(np.float64)
        return np.array([(rows * weights).sum(), (columns * weights).sum()]) / weights.sum()

    return centre(1) - centre(0)


def test_strong_starts_from_a_dihedral_view_then_moves_and_blurs_a_little():
    """Checked through the pipeline: the spots' vector, which translation, brightness and blur leave alone,
    is one of the 8 dihedral views' vectors turned by at most strong's 10 degrees (plus interpolation) and scaled
    by 0.9-1.1; all 8 views occur; and no image is a bare view (imgaug's part ran)."""
    image = two_spots()
    views = group_views(image)
    view_angles = np.array([np.degrees(np.arctan2(*spot_vector(view))) for view in views])
    length = np.linalg.norm(spot_vector(image))
    images = np.repeat(image[None], 64, axis=0)
    dataset = inputs.make_dataset(images, batch_size=16, augmentation="strong", seed=4)
    augmented = np.concatenate([np.asarray(batch) for batch in dataset])
    found = []
    for result in augmented:
        vector = spot_vector(result)
        offsets = (np.degrees(np.arctan2(*vector)) - view_angles + 180) % 360 - 180
        nearest = int(np.argmin(np.abs(offsets)))
        assert abs(offsets[nearest]) < 15, f"the spots turned {offsets[nearest]:.1f} degrees off every dihedral view"
        assert 0.85 < np.linalg.norm(vector) / length < 1.15
        assert not np.array_equal(result, views[nearest])
        found.append(nearest)
    assert set(found) == set(range(8))


def test_augment_images_is_what_the_pipeline_maps_over_its_batches(monkeypatch):
    """make_dataset's augmentation is ``inputs.augment_images`` (the function the figure draws with), nothing else."""
    calls = []
    real = inputs.augment_images

    def recording(batch, augmentation, seed):
        calls.append(augmentation)
        return real(batch, augmentation, seed)

    monkeypatch.setattr(inputs, "augment_images", recording)
    images = asymmetric_images(6)
    for augmentation in ("dihedral", "strong"):
        batches = list(inputs.make_dataset(images, batch_size=3, augmentation=augmentation, seed=1))
        assert [batch.shape[0] for batch in batches] == [3, 3]
    list(inputs.make_dataset(images, batch_size=3, augmentation="none"))
    assert calls == ["dihedral", "strong"]  # traced once per pipeline; "none" maps nothing


def test_augment_images_is_reproducible_per_seed_and_none_returns_the_batch():
    images = asymmetric_images(16)
    for augmentation in ("dihedral", "strong"):
        first = inputs.augment_images(images, augmentation, 3).numpy()
        np.testing.assert_array_equal(first, inputs.augment_images(images, augmentation, 3).numpy())
        assert not np.array_equal(first, inputs.augment_images(images, augmentation, 4).numpy())
    np.testing.assert_array_equal(inputs.augment_images(images, "none", 3).numpy(), images)
    with pytest.raises(errors.InputError, match="none, dihedral, strong"):
        inputs.augment_images(images, "flips", 0)


@pytest.mark.parametrize("augmentation", augment.AUGMENTATIONS)
def test_the_figure_shows_the_views_training_sees(augmentation):
    image = asymmetric_images(1)[0]
    figure = plots.augmentation_examples(image, inputs.views_of(image, augmentation, draws=4, seed=3), augmentation)
    try:
        assert isinstance(figure, matplotlib.figure.Figure) and len(figure.axes) == 5
        shown = [np.asarray(axis.images[0].get_array()) for axis in figure.axes]
        np.testing.assert_array_equal(shown[0], plots.composite(image))
        expected = inputs.augment_images(np.repeat(image[None], 4, axis=0), augmentation, 3).numpy()
        for picture, view in zip(shown[1:], expected):
            np.testing.assert_array_equal(picture, plots.composite(view))
        on_the_group = [
            any(np.array_equal(picture, plots.composite(view)) for view in group_views(image)) for picture in shown[1:]
        ]
        assert all(on_the_group) if augmentation != "strong" else not any(on_the_group)
        if augmentation == "none":
            assert all(np.array_equal(picture, shown[0]) for picture in shown[1:])
        else:
            assert len({picture.tobytes() for picture in shown[1:]}) > 1  # independent draws
    finally:
        matplotlib.pyplot.close(figure)


def test_random_dihedral_draws_one_view_per_image_from_its_seed():
    images = tf.constant(asymmetric_images(32))
    first = inputs.random_dihedral(images, tf.constant([7, 0], tf.int64)).numpy()
    np.testing.assert_array_equal(first, inputs.random_dihedral(images, tf.constant([7, 0], tf.int64)).numpy())
    views = view_indices(images.numpy(), first)
    assert len(set(views)) > 1  # the views differ from image to image within a batch
    other = view_indices(images.numpy(), inputs.random_dihedral(images, tf.constant([8, 0], tf.int64)).numpy())
    assert other != views


@pytest.mark.parametrize("augmentation", ["dihedral", "strong"])
def test_augmentation_needs_square_images(augmentation):
    images = np.zeros((4, 8, 12, 3), np.uint8)
    with pytest.raises(errors.InputError, match="square images"):
        inputs.make_dataset(images, augmentation=augmentation)
    with pytest.raises(errors.InputError, match="square images"):
        inputs.augment_images(images, augmentation, 0)
    assert len(list(inputs.make_dataset(images, batch_size=2, augmentation="none"))) == 2


def test_images_only_and_memmap_source(tmp_path):
    images, _ = indexed_samples(7, channels=3)
    path = tmp_path / "images.u8"
    images.tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="r", shape=images.shape)
    batches = [np.asarray(batch) for batch in inputs.make_dataset(mapped, batch_size=3)]
    np.testing.assert_array_equal(np.concatenate(batches), images)


def test_bad_inputs_raise_value_errors():
    images, targets = indexed_samples(4)
    with pytest.raises(errors.InputError, match="uint8"):
        inputs.make_dataset(images.astype(np.float32))
    with pytest.raises(errors.InputError, match="targets"):
        inputs.make_dataset(images, targets[:3])
    with pytest.raises(errors.InputError, match="none, dihedral, strong"):
        inputs.make_dataset(images, augmentation="flips")


def test_keras_model_fits_on_the_dataset():
    images, targets = indexed_samples(8)
    targets = (targets > 0).astype(np.float32)
    model = keras.Sequential(
        [
            keras.Input((IMAGE_SIZE, IMAGE_SIZE, 4), dtype="uint8"),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(28, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    dataset = inputs.make_dataset(images, targets, batch_size=4, shuffle=True, augmentation="strong")
    before = [weights.copy() for weights in model.get_weights()]
    history = model.fit(dataset, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)
    assert 0 < history.history["loss"][0] < 2  # a binary cross-entropy of sigmoid outputs near 0.5 is about 0.69
    assert all(not np.array_equal(old, new) for old, new in zip(before, model.get_weights())), "one step was taken"


def test_indices_select_rows_without_copying_and_keep_pairs():
    images = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    targets = np.eye(10, 28, dtype=np.float32)
    chosen = np.array([7, 2, 5])
    batches = list(inputs.make_dataset(images, targets, batch_size=2, indices=chosen).as_numpy_iterator())
    seen_images = np.concatenate([batch[0] for batch in batches])
    seen_targets = np.concatenate([batch[1] for batch in batches])
    assert seen_images[:, 0, 0, 0].tolist() == [7, 2, 5]
    np.testing.assert_array_equal(seen_targets, targets[chosen])
    with pytest.raises(errors.InputError, match="indices must be"):
        inputs.make_dataset(images, targets, indices=[10])


def test_in_graph_dihedral_keeps_every_image_with_its_own_targets():
    """Each augmented image is one of the 8 views of the image its targets belong to (none swapped in a batch)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(21, IMAGE_SIZE, IMAGE_SIZE, 4), dtype=np.uint8)
    targets = np.zeros((21, 28), np.float32)
    targets[:, 0] = np.arange(21)
    dataset = inputs.make_dataset(images, targets, batch_size=8, shuffle=True, augmentation="dihedral", seed=5)
    seen_views = set()
    for batch_images, batch_targets in collect(dataset):
        for image, index in zip(batch_images, batch_targets[:, 0].astype(int)):
            matches = [
                view for view, candidate in enumerate(group_views(images[index])) if np.array_equal(image, candidate)
            ]
            assert len(matches) == 1, f"image of row {index} is none of its 8 views"
            seen_views.add(matches[0])
    assert len(seen_views) > 1


def epoch_batch_sizes(count, replicas, batch_size=16, shuffle=False):
    """The sizes of ``make_dataset``'s batches of ``count`` rows, checked to be the same in two epochs and to be
    the dataset's cardinality."""
    images, targets = np.zeros((40, 4, 4, 3), np.uint8), np.zeros((40, 28), np.float32)
    dataset = inputs.make_dataset(
        images, targets, batch_size, shuffle=shuffle, indices=np.arange(count), replicas=replicas
    )
    epochs = [[int(batch[0].shape[0]) for batch in dataset] for _ in range(2)]
    assert epochs[0] == epochs[1] and int(dataset.cardinality()) == len(epochs[0])
    return epochs[0]


def test_a_set_smaller_than_a_batch_starts_with_a_batch_the_replicas_share_evenly():
    assert epoch_batch_sizes(9, 1) == [9]
    # Keras averages the first batch over the replicas: it must split evenly; and no replica's part is empty
    assert epoch_batch_sizes(9, 2) == [6, 3]
    assert epoch_batch_sizes(10, 4) == [4, 6]
    assert epoch_batch_sizes(20, 2) == [16, 4]  # a full first batch: as it was


def test_no_replica_gets_an_empty_part_of_the_last_batch_in_any_epoch():
    assert epoch_batch_sizes(33, 1) == [16, 16, 1]  # one device: as it was
    assert epoch_batch_sizes(33, 2) == [16, 14, 3] == epoch_batch_sizes(33, 2, shuffle=True)
    assert epoch_batch_sizes(35, 4) == [16, 12, 7]
    assert epoch_batch_sizes(5, 2, batch_size=2) == [2, 3]  # no batch of 2 can give 2 images away: the rest joins it
    assert epoch_batch_sizes(34, 2) == [16, 16, 2]  # a rest the replicas share: as it was
    assert inputs.batch_sizes(40, 16, 2) == [16, 16, 8] and inputs.batch_sizes(32, 16, 2) == [16, 16]


def test_under_jax_on_several_devices_every_batch_has_one_shape_so_each_step_compiles_once(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")  # the path Keras' JAX backend takes (tf.data only)
    images, targets = np.zeros((40, 4, 4, 3), np.uint8), np.ones((40, 28), np.float32)

    def batches(count, **shape):
        dataset = inputs.make_dataset(images, targets, 16, indices=np.arange(count), replicas=2, **shape)
        return [[np.asarray(part) for part in batch] for batch in dataset]

    assert [len(batch[0]) for batch in batches(35, shuffle=True)] == [16, 16]  # 3 sit out, other ones each epoch
    held_out = batches(35)
    assert [len(batch[0]) for batch in held_out] == [16, 16, 16]  # the last filled with rows that weigh nothing
    assert np.concatenate([batch[2] for batch in held_out]).tolist() == [1.0] * 35 + [0.0] * 13
    assert [len(batch[0]) for batch in batches(9, shuffle=True)] == [8]  # fewer than a batch: what the devices share
    assert [batch[2].tolist() for batch in batches(9)] == [[1.0] * 9 + [0.0]]
