"""The synthetic dataset: byte-identical generation, Kaggle layout, real label statistics, honest green."""

import re
import struct

import numpy as np
import pytest
from scipy.stats import spearmanr

from hpa_utils import dataset, errors
from hpa_utils.dataset import labels, synthetic

N_TRAIN, N_TEST, SIZE = 20, 5, 64
UUID_SHAPE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-11e8-[0-9a-f]{4}-[0-9a-f]{12}$")


def read_tree(folder):
    """{relative path: bytes} of every file under ``folder``."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Three tiny datasets: seed 0 with one worker, seed 0 with two workers, seed 1."""
    root = tmp_path_factory.mktemp("synthetic")
    one = synthetic.generate(root / "one", N_TRAIN, N_TEST, image_size=SIZE, seed=0, workers=1, progress=False)
    two = synthetic.generate(root / "two", N_TRAIN, N_TEST, image_size=SIZE, seed=0, workers=2, progress=False)
    other = synthetic.generate(root / "other", N_TRAIN, N_TEST, image_size=SIZE, seed=1, workers=1, progress=False)
    return root, one, two, other


def test_same_arguments_write_byte_identical_files_whatever_the_worker_count(generated, tmp_path):
    _, one, two, _ = generated
    again = synthetic.generate(tmp_path / "again", N_TRAIN, N_TEST, image_size=SIZE, seed=0, workers=1, progress=False)
    files = read_tree(one)
    assert len(files) == 3 + 4 * (N_TRAIN + N_TEST)
    assert read_tree(again) == files
    assert read_tree(two) == files


def test_another_seed_gives_other_ids_labels_and_pixels(generated):
    _, one, _, other = generated
    assert (one / "train.csv").read_text() != (other / "train.csv").read_text()
    images_one = sorted(path.read_bytes() for path in (one / "train").glob("*_blue.png"))
    images_other = sorted(path.read_bytes() for path in (other / "train").glob("*_blue.png"))
    assert not set(images_one) & set(images_other)


def test_layout_is_kaggle_like(generated):
    root, one, _, _ = generated
    train = (one / "train.csv").read_text().splitlines()
    test_labels = (one / "test_labels.csv").read_text().splitlines()
    submission = (one / "sample_submission.csv").read_text().splitlines()
    assert train[0] == "Id,Target" and test_labels[0] == "Id,Target" and submission[0] == "Id,Predicted"
    train_ids = [line.split(",")[0] for line in train[1:]]
    test_ids = [line.split(",")[0] for line in test_labels[1:]]
    assert len(train_ids) == N_TRAIN and len(test_ids) == N_TEST
    assert train_ids == sorted(train_ids)  # the real train.csv is sorted by Id
    assert [line.split(",")[0] for line in submission[1:]] == test_ids
    assert all(line.split(",")[1] == "0" for line in submission[1:])
    assert all(UUID_SHAPE.match(image_id) for image_id in train_ids + test_ids)
    assert len(set(train_ids + test_ids)) == N_TRAIN + N_TEST
    for line in train[1:] + test_labels[1:]:
        image_id, target = line.split(",")
        assert labels.parse_target(target, image_id) == [int(label) for label in target.split()]
    for split, ids in (("train", train_ids), ("test", test_ids)):
        names = sorted(path.name for path in (one / split).iterdir())
        assert names == sorted(f"{image_id}_{color}.png" for image_id in ids for color in dataset.COLORS)
        for name in names[:8]:
            data = (one / split / name).read_bytes()
            width, height, bit_depth, color_type = struct.unpack(">IIBB", data[16:26])
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and (width, height) == (SIZE, SIZE)
            assert (bit_depth, color_type) == (8, 0)  # 8-bit grayscale, like the Kaggle files
    assert dataset.validate(one) == []  # the project's own reader accepts it
    assert not [path for path in root.iterdir() if path.name.startswith(".")]  # no temporary folder left


def test_label_sets_follow_the_real_statistics():
    draws = synthetic.sample_label_sets(4000, np.random.default_rng(0), min_per_class=2)
    real_sets = set(labels.train_label_sets()[0])
    assert all(tuple(label_set) in real_sets for label_set in draws)  # co-occurrence comes from real sets
    counts = labels.to_multi_hot(draws).sum(axis=0)
    real_counts = labels.train_class_counts()
    assert counts.argmax() == 0 and counts.min() >= 2
    assert spearmanr(counts, real_counts).statistic > 0.9
    assert abs(counts[0] / len(draws) - real_counts[0] / 31072) < 0.03
    sizes = np.bincount([len(label_set) for label_set in draws], minlength=6) / len(draws)
    assert abs(sizes[1] - 0.49) < 0.04 and abs(sizes[2] - 0.40) < 0.04 and abs(sizes[3] - 0.10) < 0.03
    assert sizes[4:].sum() < 0.03


def test_every_class_reaches_the_floor_in_a_small_draw():
    first = synthetic.sample_label_sets(60, np.random.default_rng(7), min_per_class=2)
    again = synthetic.sample_label_sets(60, np.random.default_rng(7), min_per_class=2)
    assert first == again
    assert labels.to_multi_hot(first).sum(axis=0).min() >= 2
    tiny = synthetic.sample_label_sets(5, np.random.default_rng(7), min_per_class=2)  # cannot hold 28 classes
    assert len(tiny) == 5 and all(tiny)


def test_blue_red_yellow_ignore_the_labels_and_every_class_has_its_own_green():
    renders = {label: synthetic.render_sample([label], 96, np.random.default_rng(3)) for label in range(28)}
    for label, channels in renders.items():
        assert set(channels) == set(dataset.COLORS)
        assert all(image.shape == (96, 96) and image.dtype == np.uint8 for image in channels.values())
        if label not in (16, 17):  # these two make sure the field holds a dividing cell
            for color in ("red", "blue", "yellow"):
                assert np.array_equal(channels[color], renders[0][color]), (label, color)
    greens = {renders[label]["green"].tobytes() for label in range(28)}
    assert len(greens) == 28


def test_green_tells_nucleoplasm_from_cytosol():
    """Class 0 lights the nucleus, class 25 the cytoplasm; the nucleus is where blue is bright."""
    ratios = {}
    for label in (0, 25):
        inside, outside = [], []
        for index in range(6):
            channels = synthetic.render_sample([label], 128, np.random.default_rng([11, index]))
            nucleus = channels["blue"] > 40
            cell = channels["red"] > 12
            inside.append(channels["green"][nucleus].mean())
            outside.append(channels["green"][cell & ~nucleus].mean())
        ratios[label] = np.mean(inside) / np.mean(outside)
    assert ratios[0] > 2.0 and ratios[25] < 0.5


def test_channels_are_mostly_dark():
    label_sets = synthetic.sample_label_sets(24, np.random.default_rng(5), min_per_class=0)
    means = {color: [] for color in dataset.COLORS}
    for index, label_set in enumerate(label_sets):
        for color, image in synthetic.render_sample(label_set, 128, np.random.default_rng(index)).items():
            means[color].append(image.mean() / 255)
            assert np.percentile(image, 10) < 0.03 * 255  # black background
    for color, values in means.items():
        assert 0.03 < np.mean(values) < 0.1, (color, np.mean(values))


def test_ids_are_unique_uuid_shaped_and_seeded():
    ids = synthetic.make_ids(500, seed=3)
    assert len(set(ids)) == 500 and all(UUID_SHAPE.match(image_id) for image_id in ids)
    assert synthetic.make_ids(500, seed=3) == ids and synthetic.make_ids(500, seed=4) != ids


def test_refuses_a_non_empty_out_dir(tmp_path):
    out_dir = tmp_path / "data"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    with pytest.raises(errors.InputError, match="not an empty folder"):
        synthetic.generate(out_dir, 2, 1, image_size=32, progress=False)
    assert [path.name for path in out_dir.iterdir()] == ["keep.txt"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert synthetic.generate(empty, 2, 1, image_size=32, workers=1, progress=False) == empty
    assert (empty / "train.csv").is_file()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(n_train=0), "n_train"),
        (dict(n_test=0), "n_test"),
        (dict(image_size=16), "image_size"),
        (dict(image_size=64.0), "image_size"),
        (dict(seed=-1), "seed"),
        (dict(min_per_class=-1), "min_per_class"),
        (dict(workers=0), "workers"),
    ],
)
def test_bad_arguments_are_refused_clearly(tmp_path, arguments, message):
    call = dict(out_dir=tmp_path / "data", n_train=2, n_test=1, image_size=32, progress=False) | arguments
    with pytest.raises(errors.InputError, match=message):
        synthetic.generate(**call)
    assert not (tmp_path / "data").exists()


def test_render_sample_refuses_bad_labels():
    with pytest.raises(errors.InputError, match="labels"):
        synthetic.render_sample([28], 64, np.random.default_rng(0))
    with pytest.raises(errors.InputError, match="labels"):
        synthetic.render_sample([], 64, np.random.default_rng(0))


def test_ensure_dataset_generates_once_then_reuses(tmp_path, capsys):
    path = synthetic.ensure_dataset(tmp_path, n_train=3, n_test=2, image_size=32, seed=4, min_per_class=1)
    assert path.parent == tmp_path and path.name.startswith("synthetic-train3-test2-32px-seed4-min1")
    assert "generating" in capsys.readouterr().out
    stamp = (path / "train.csv").stat().st_mtime_ns
    assert synthetic.ensure_dataset(tmp_path, n_train=3, n_test=2, image_size=32, seed=4, min_per_class=1) == path
    assert capsys.readouterr().out == ""  # reused quietly: the notebook's one line names the folder
    assert (path / "train.csv").stat().st_mtime_ns == stamp
    other = synthetic.ensure_dataset(tmp_path, n_train=3, n_test=2, image_size=32, seed=5, min_per_class=1)
    assert other != path and (other / "train.csv").is_file()
