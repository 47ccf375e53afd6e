"""Tests of hpa_utils.results.predict: dihedral views in TensorFlow, TTA with tiny real Keras models, submissions."""

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from hpa_utils import errors
from hpa_utils.dataset import labels
from hpa_utils.results import metrics, predict
from hpa_utils.training import inputs

REAL_LABELS = Path(__file__).parent / "data"  # the competition's real label files


@pytest.fixture(scope="module")
def sample_submission():
    """The competition's sample_submission.csv (11,702 test Ids)."""
    return pd.read_csv(REAL_LABELS / "sample_submission.csv", dtype=str)


def numpy_dihedral(images, index):
    """Reference for the one dihedral group (``inputs.dihedral_tf``, which predict uses): rotate 90 degrees
    counter-clockwise index % 4 times, then mirror left-right if index >= 4."""
    view = np.rot90(images, k=index % 4, axes=(1, 2))
    return view[:, :, ::-1] if index >= 4 else view


def asymmetric_images(count=3, height=5, width=5, channels=4, seed=0):
    """Distinct values everywhere, so no rotation or mirror maps an image onto itself."""
    rng = np.random.default_rng(seed)
    return rng.permutation(count * height * width * channels).reshape(count, height, width, channels).astype(np.uint8)


def tiny_model(image_size=8, invariant=False, input_dtype="float32"):
    """GlobalAveragePooling (rotation-invariant) or Flatten (position-sensitive) then Dense(28, sigmoid)."""
    inputs = keras.Input((image_size, image_size, 4), dtype=input_dtype)
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(scaled) if invariant else keras.layers.Flatten()(scaled)
    outputs = keras.layers.Dense(
        28,
        activation="sigmoid",
        kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=0),
        bias_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=1),
    )(pooled)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("shape", [(3, 5, 5, 4), (2, 4, 6, 3)])
def test_the_pipeline_and_the_model_apply_one_dihedral_group(shape):
    images = asymmetric_images(*shape)
    views = []
    for index in range(8):  # tf.data's views (training) and Keras ops' (prediction, any backend) are numpy's
        expected = numpy_dihedral(images, index)
        np.testing.assert_array_equal(inputs.dihedral_tf(images, index).numpy(), expected)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(predict.dihedral(images, index)), expected)
        views.append(expected.tobytes())
    assert len(set(views)) == 8  # eight different views: the test image has no symmetry
    np.testing.assert_array_equal(inputs.dihedral_tf(images[0], 5).numpy(), numpy_dihedral(images, 5)[0])
    with pytest.raises(errors.InputError, match="0..7"):
        inputs.dihedral_tf(images, 8)


def test_predict_tta_equals_mean_over_explicit_views(tmp_path):
    model = tiny_model(invariant=False)
    images = np.random.default_rng(1).integers(0, 256, (10, 8, 8, 4), dtype=np.uint8)
    on_disk = np.lib.format.open_memmap(tmp_path / "images.npy", mode="w+", dtype=np.uint8, shape=images.shape)
    on_disk[:] = images
    on_disk.flush()
    per_view = [model.predict(numpy_dihedral(images, index).astype(np.float32), verbose=0) for index in range(8)]
    # batch_size 4 does not divide 10: the last batch is short.
    tta = predict.predict_tta(model, on_disk, views=8, batch_size=4, progress=False)
    assert tta.shape == (10, 28) and tta.dtype == np.float32
    np.testing.assert_allclose(tta, np.mean(per_view, axis=0), atol=1e-5)
    three_views = predict.predict_tta(model, images, views=3, batch_size=4, progress=False)
    np.testing.assert_allclose(three_views, np.mean(per_view[:3], axis=0), atol=1e-5)
    plain = predict.predict_tta(model, images, views=1, batch_size=3, progress=False)
    np.testing.assert_allclose(plain, per_view[0], atol=1e-5)
    assert np.abs(tta - plain).max() > 1e-3  # this model sees the views differently


def test_tta_of_a_rotation_invariant_model_equals_plain_prediction():
    model = tiny_model(invariant=True, input_dtype="uint8")
    images = np.random.default_rng(2).integers(0, 256, (6, 8, 8, 4), dtype=np.uint8)
    tta = predict.predict_tta(model, images, views=8, batch_size=4, progress=False)
    plain = predict.predict_tta(model, images, views=1, batch_size=4, progress=False)
    np.testing.assert_allclose(tta, plain, atol=1e-5)


def test_predict_tta_rejects_bad_arguments():
    model = tiny_model(invariant=True)
    images = np.zeros((2, 8, 8, 4), np.uint8)
    with pytest.raises(errors.InputError, match="views"):
        predict.predict_tta(model, images, views=9)
    with pytest.raises(errors.InputError, match="views"):
        predict.predict_tta(model, images, views=0)
    with pytest.raises(errors.InputError, match="square.*8x6"):
        predict.predict_tta(model, np.zeros((2, 8, 6, 4), np.uint8), views=2)
    with pytest.raises(errors.InputError, match="NHWC"):
        predict.predict_tta(model, np.zeros((8, 8, 4), np.uint8))


def random_multi_hot(rows, seed=0):
    probabilities = np.random.default_rng(seed).random((rows, 28))
    return metrics.apply_thresholds(probabilities, 0.9, at_least_one=True)


def test_submission_follows_the_real_sample_submission_order(sample_submission, tmp_path):
    sample_ids = sample_submission["Id"].tolist()
    assert len(sample_ids) == 11702
    multi_hot = random_multi_hot(len(sample_ids))
    shuffled = np.random.default_rng(3).permutation(len(sample_ids))
    submission = predict.make_submission(sample_submission, [sample_ids[row] for row in shuffled], multi_hot[shuffled])
    assert submission.columns.tolist() == ["Id", "Predicted"]
    assert submission["Id"].tolist() == sample_ids
    assert submission["Predicted"].tolist() == [labels.format_target(np.flatnonzero(row)) for row in multi_hot]
    path = predict.write_submission(tmp_path / "submission.csv", submission, sample_submission)
    written = pd.read_csv(path, dtype=str)
    assert written["Id"].tolist() == sample_ids
    assert written["Predicted"].tolist() == submission["Predicted"].tolist()
    assert sorted(item.name for item in tmp_path.iterdir()) == ["submission.csv"]


def small_sample():
    return pd.DataFrame({"Id": ["a", "b", "c", "d"], "Predicted": ["0"] * 4})


@pytest.mark.parametrize(
    ("ids", "predicted", "message"),
    [
        (["a", "b", "c"], ["0", "1", "2"], r"missing Ids .*1 \(d\)"),
        (["a", "b", "c", "d", "e"], ["0"] * 5, r"extra Ids .*1 \(e\)"),
        (["a", "b", "c", "c", "d"], ["0"] * 5, r"duplicate Ids: 1 \(c\)"),
        (["a", "c", "b", "d"], ["0"] * 4, r"wrong order: row 1 has Id c, the sample submission has b"),
        (["a", "b", "c", "d"], ["0", "1 28", "2", "3"], r"label outside 0..27 for Ids: 1 \(b \(28\)\)"),
        (["a", "b", "c", "d"], ["0", "1", "", "3"], r"empty prediction for Ids: 1 \(c\)"),
        (["a", "b", "c", "d"], ["0", "1", None, "x"], r"empty prediction for Ids: 1 \(c\)(.|\n)*non-integer label .*d"),
    ],
)
def test_validate_submission_names_the_culprit(ids, predicted, message):
    with pytest.raises(errors.InputError, match=message):
        predict.validate_submission(pd.DataFrame({"Id": ids, "Predicted": predicted}), small_sample())


def test_validation_accepts_integer_columns_as_pandas_reads_them(sample_submission, tmp_path):
    # The real sample submission read without dtype=str has an integer Predicted column ("0" everywhere).
    path = REAL_LABELS / "sample_submission.csv"
    as_read = pd.read_csv(path)
    predict.validate_submission(as_read, sample_submission)


def test_make_submission_rejects_empty_rows_and_wrong_ids():
    sample = small_sample()
    multi_hot = labels.to_multi_hot([[0], [1, 2], [], [27]])
    with pytest.raises(errors.InputError, match=r"empty prediction for Ids: 1 \(c\)"):
        predict.make_submission(sample, ["a", "b", "c", "d"], multi_hot)
    with pytest.raises(
        errors.InputError,
        match=r"missing Ids \(in the sample submission, not in this one\): 1 \(d\)(.|\n)*"
        r"extra Ids \(not in the sample submission\): 1 \(e\)",
    ):
        predict.make_submission(sample, ["a", "b", "c", "e"], multi_hot)
    with pytest.raises(errors.InputError, match=r"\(3, 28\)"):
        predict.make_submission(sample, ["a", "b", "c", "d"], multi_hot[:3])


def test_write_submission_leaves_the_old_file_when_validation_fails(tmp_path):
    sample = small_sample()
    path = tmp_path / "submission.csv"
    good = pd.DataFrame({"Id": ["a", "b", "c", "d"], "Predicted": ["0", "1 2", "5", "27"]})
    predict.write_submission(path, good, sample)
    before = path.read_bytes()
    assert before.decode().splitlines() == ["Id,Predicted", "a,0", "b,1 2", "c,5", "d,27"]
    bad = good.assign(Predicted=["0", "1 2", "", "27"])
    with pytest.raises(errors.InputError, match="empty prediction"):
        predict.write_submission(path, bad, sample)
    assert path.read_bytes() == before
    assert sorted(item.name for item in tmp_path.iterdir()) == ["submission.csv"]


def test_score_submission_equals_macro_f1(sample_submission):
    ids = sample_submission["Id"].tolist()[:500]
    rng = np.random.default_rng(5)
    truth = random_multi_hot(500, seed=6)
    noisy = np.where(rng.random(truth.shape) < 0.1, 1 - truth, truth).astype(np.uint8)
    noisy = metrics.apply_thresholds(noisy + 0.01 * rng.random(truth.shape), 0.5, at_least_one=True)
    test_labels = pd.DataFrame({"Id": ids, "Target": [labels.format_target(np.flatnonzero(row)) for row in truth]})
    submission = pd.DataFrame(
        {"Id": ids[::-1], "Predicted": [labels.format_target(np.flatnonzero(row)) for row in noisy[::-1]]}
    )
    expected = metrics.macro_f1(truth, noisy)
    assert 0.3 < expected < 1.0
    assert predict.score_submission(submission, test_labels) == pytest.approx(expected)
    with pytest.raises(errors.InputError, match=r"missing Ids .*1 \("):
        predict.score_submission(submission.iloc[1:], test_labels)


def test_a_view_average_keeps_its_compiled_prediction_and_sees_new_weights():
    model = tiny_model()
    images = np.random.default_rng(3).integers(0, 256, (5, 8, 8, 4), dtype=np.uint8)
    plain = predict.predict_tta(model, images, views=1, progress=False)
    np.testing.assert_allclose(plain, model.predict(images.astype("float32"), verbose=0), atol=1e-5)
    averaged = predict.ViewAverage(model, views=2)
    first = averaged(images, progress=False)
    compiled = averaged.model.predict_function
    model.set_weights([weight * 0.5 for weight in model.get_weights()])  # e.g. the next epoch's weights
    second = averaged(images[:3], progress=False)
    assert averaged.model.predict_function is compiled  # compiled once, kept by the object that owns it
    expected = np.mean(
        [model.predict(numpy_dihedral(images[:3], index).astype("float32"), verbose=0) for index in range(2)], axis=0
    )
    np.testing.assert_allclose(second, expected, atol=1e-5)
    assert not np.allclose(first[:3], second)


class CountingTraces(keras.layers.Layer):
    """The identity, counting the times Python runs its ``call``: once per trace of a compiled prediction."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.traces = 0

    def call(self, x):
        self.traces += 1
        return x


def test_predict_tta_traces_a_models_prediction_once_not_per_call():
    counting = CountingTraces()
    inputs_ = keras.Input((8, 8, 4))
    model = keras.Model(
        inputs_, keras.layers.Dense(28, activation="sigmoid")(keras.layers.Flatten()(counting(inputs_)))
    )
    images = asymmetric_images(count=8, height=8, width=8)
    first = predict.predict_tta(model, images, views=1, batch_size=4, progress=False)
    after_first = counting.traces
    for views in (1, 8, 1, 8):  # alternating view counts: each keeps its own compiled prediction
        predict.predict_tta(model, images, views=views, batch_size=4, progress=False)
    after_eight = counting.traces
    for _ in range(3):
        np.testing.assert_array_equal(predict.predict_tta(model, images, views=1, batch_size=4, progress=False), first)
        predict.predict_tta(model, images, views=8, batch_size=4, progress=False)
    assert counting.traces == after_eight > after_first, "traced again on a later call"
    other = keras.models.clone_model(model)  # another model (other weights) gets its own prediction
    expected = other.predict(images, verbose=0)
    np.testing.assert_allclose(predict.predict_tta(other, images, views=1, batch_size=4, progress=False), expected)
