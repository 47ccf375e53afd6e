"""Tests of hpa_utils.dataset: the readers on the real label files, every bad input, image conversions, validate."""

import csv
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hpa_utils import dataset, errors
from hpa_utils.dataset import labels
from hpa_utils.system import environment

REAL_DATA = Path(__file__).with_name("data")  # copies of the competition's train.csv and sample_submission.csv
CHANNEL_VALUES = {"red": 10, "green": 20, "blue": 30, "yellow": 40}
TRAIN_TARGETS = {"train-a": "16 0", "train-b": "5", "train-c": "27 1 2"}
TEST_IDS = ("test-a", "test-b")


def write_csv(path, text):
    """Write raw bytes or text exactly as given (no newline translation)."""
    path = Path(path)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def write_png(path, array):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array), path
    return path


def make_dataset(root, train=None, test=TEST_IDS, size=16):
    """A tiny Kaggle-layout folder: train.csv, sample_submission.csv, and four constant-valued PNGs per Id."""
    train = TRAIN_TARGETS if train is None else train
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_csv(root / "train.csv", "Id,Target\n" + "".join(f"{key},{value}\n" for key, value in train.items()))
    write_csv(root / "sample_submission.csv", "Id,Predicted\n" + "".join(f"{key},0\n" for key in test))
    for split, ids in (("train", train), ("test", test)):
        (root / split).mkdir(exist_ok=True)
        for offset, image_id in enumerate(ids):
            for color, value in CHANNEL_VALUES.items():
                write_png(root / split / f"{image_id}_{color}.png", np.full((size, size), value + offset, np.uint8))
    return root


def noise_png_bytes(size=64, seed=0):
    """A real PNG big enough that cutting it in half loses image data."""
    image = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


def train_csv_error(tmp_path, text):
    write_csv(tmp_path / "train.csv", text)
    with pytest.raises(dataset.DatasetError) as caught:
        dataset.read_train_labels(tmp_path)
    return caught.value


# --- the real competition files ----------------------------------------------------------------


def test_real_train_csv_reads_every_row_with_the_real_class_counts():
    train = dataset.read_train_labels(REAL_DATA)
    assert list(train.columns) == ["Id", "Target", "labels"]
    assert len(train) == 31072
    assert train["Id"].is_unique
    counts = labels.to_multi_hot(train["labels"].tolist()).sum(axis=0)
    np.testing.assert_array_equal(counts, labels.train_class_counts())
    # first rows of the file: "16 0" and "7 1 2 0" are multi-label, normalised to ascending order
    assert train.loc[0, "Id"] == "00070df0-bbc3-11e8-b2bc-ac1f6b6435d0"
    assert train.loc[0, "Target"] == "0 16" and train.loc[0, "labels"] == [0, 16]
    assert train.loc[1, "labels"] == [0, 1, 2, 7]
    per_image = train["labels"].map(len).value_counts().to_dict()
    assert per_image == {1: 15126, 2: 12485, 3: 3160, 4: 299, 5: 2}


def test_real_sample_submission_keeps_file_order():
    submission = dataset.read_sample_submission(REAL_DATA)
    assert list(submission.columns) == ["Id", "Predicted"]
    assert len(submission) == 11702
    with open(REAL_DATA / "sample_submission.csv", newline="") as file:
        ids_in_file = [row["Id"] for row in csv.DictReader(file)]
    assert submission["Id"].tolist() == ids_in_file


def test_read_test_labels_is_none_without_the_file():
    assert dataset.read_test_labels(REAL_DATA) is None


# --- bad label files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Id,Label\na,1\n", ["train.csv", "missing column 'Target'", "'Label'"]),
        ("Target\n1\n", ["train.csv", "missing column 'Id'"]),
        ("Id,Target\na,1\nb,\n", ["train.csv row 3 (Id b)", "empty Target"]),
        ("Id,Target\na,1\nb,1 x\n", ["train.csv row 3 (Id b)", "non-integer", "'x'"]),
        ("Id,Target\na,1\nb,0 28\n", ["train.csv row 3 (Id b)", "label 28", "outside 0..27"]),
        ("Id,Target\na,-1\n", ["train.csv row 2 (Id a)", "label -1"]),
        ("Id,Target\na,1\nb,2\na,3\n", ["train.csv rows 2 and 4", "duplicate Id 'a'"]),
        ("Id,Target\na,1\na,2\na,3\n", ["train.csv rows 2, 3 and 4", "duplicate Id 'a'"]),
        ("Id,Target\n../escape,1\n", ["train.csv row 2", "'../escape'"]),
        ("Id,Target\nsub/dir,1\n", ["train.csv row 2", "'sub/dir'", "path separator"]),
        ("Id,Target\nback\\slash,1\n", ["train.csv row 2", "back\\\\slash", "path separator"]),
        ("Id,Target\n..,1\n", ["train.csv row 2", "'..'"]),
        ("Id,Target\nC:evil,1\n", ["train.csv row 2", "'C:evil'", "absolute"]),
        ("Id,Target\n,1\n", ["train.csv row 2", "empty Id"]),
        ("Id,Target\na,1,2\n", ["train.csv row 2", "3 fields", "header has 2"]),
        ("", ["train.csv", "empty file"]),
        ("Id,Target\n", ["train.csv", "no rows"]),
        (b"Id,Target\na,\xff\xfe\n", ["train.csv", "not UTF-8"]),
    ],
)
def test_bad_train_csv_names_the_culprit(tmp_path, text, expected):
    error = train_csv_error(tmp_path, text)
    assert isinstance(error, ValueError)
    assert len(error.problems) == 1, error.problems
    for piece in expected:
        assert piece in str(error), (piece, str(error))


def test_missing_train_csv_names_the_file(tmp_path):
    with pytest.raises(dataset.DatasetError, match="train.csv: file not found"):
        dataset.read_train_labels(tmp_path)


def test_every_problem_of_a_label_file_is_reported_at_once(tmp_path):
    text = "Id,Target\nok,0\nempty,\nword,x\nbig,28\nok,1\nsub/dir,3\n"
    error = train_csv_error(tmp_path, text)
    assert len(error.problems) == 5
    message = str(error)
    for piece in ["row 3 (Id empty)", "row 4 (Id word)", "row 5 (Id big)", "rows 2 and 6", "row 7: Id 'sub/dir'"]:
        assert piece in message
    assert message.count("\n") == 4  # one problem per line


def test_dataset_error_caps_what_it_shows_but_keeps_every_problem(tmp_path):
    text = "Id,Target\n" + "".join(f"id{number},x\n" for number in range(60))
    error = train_csv_error(tmp_path, text)
    assert len(error.problems) == 60
    assert "... and 10 more" in str(error)
    assert "(Id id49)" in str(error) and "(Id id50)" not in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == error.problems and str(copy) == str(error)


def test_target_errors_say_their_kind_and_culprit_and_survive_pickling():
    for text, kind, culprit in (("", "empty", None), ("3 x", "non-integer label", "x"), ("3 28", "label outside", 28)):
        with pytest.raises(labels.TargetError) as error:
            labels.parse_target(text, where="row 2")
        assert (error.value.kind, error.value.culprit) == (kind, culprit)
        assert str(error.value).startswith("row 2: ")
        copy = pickle.loads(pickle.dumps(error.value))
        assert (str(copy), copy.kind, copy.culprit) == (str(error.value), kind, culprit)
    assert labels.parse_target(" 16 0 16 ") == [0, 16]


def test_bom_crlf_extra_columns_blank_lines_and_spaces_are_tolerated(tmp_path):
    text = "\ufeffId,Target,Notes\r\na,16 0,x\r\n\r\n b , 5 ,y\r\nc,1,\r\n"
    write_csv(tmp_path / "train.csv", text)
    train = dataset.read_train_labels(tmp_path)
    assert list(train.columns) == ["Id", "Target", "labels"]
    assert train["Id"].tolist() == ["a", "b", "c"]
    assert train["Target"].tolist() == ["0 16", "5", "1"]
    assert train["labels"].tolist() == [[0, 16], [5], [1]]


def test_row_numbers_stay_right_with_bom_crlf_and_blank_lines(tmp_path):
    error = train_csv_error(tmp_path, "\ufeffId,Target\r\na,1\r\n\r\nb,99\r\n")
    assert error.problems == ["train.csv row 4 (Id b): Target '99' has label 99 outside 0..27"]


def test_ids_like_na_stay_strings(tmp_path):
    write_csv(tmp_path / "train.csv", "Id,Target\nNA,1\nnull,2\nnan,3\n")
    assert dataset.read_train_labels(tmp_path)["Id"].tolist() == ["NA", "null", "nan"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Predicted\n0\n", ["sample_submission.csv", "missing column 'Id'"]),
        ("Id,Predicted\nt1,0\nt2,0\nt1,0\n", ["sample_submission.csv rows 2 and 4", "duplicate Id 't1'"]),
        ("Id,Predicted\n../t1,0\n", ["sample_submission.csv row 2", "'../t1'"]),
        ("Id,Predicted\nt\\1,0\n", ["sample_submission.csv row 2", "path separator"]),
        ("Id,Predicted\n", ["sample_submission.csv", "no rows"]),
    ],
)
def test_bad_sample_submission_names_the_culprit(tmp_path, text, expected):
    write_csv(tmp_path / "sample_submission.csv", text)
    with pytest.raises(dataset.DatasetError) as caught:
        dataset.read_sample_submission(tmp_path)
    for piece in expected:
        assert piece in str(caught.value), (piece, str(caught.value))


def test_sample_submission_without_predicted_column_reads_ids(tmp_path):
    write_csv(tmp_path / "sample_submission.csv", "\ufeffId\r\nz\r\na\r\n")
    submission = dataset.read_sample_submission(tmp_path)
    assert submission["Id"].tolist() == ["z", "a"]
    assert submission["Predicted"].tolist() == ["", ""]


def test_read_test_labels_reads_and_checks_test_labels_csv(tmp_path):
    write_csv(tmp_path / "test_labels.csv", "Id,Target\nt1,3 1\n")
    frame = dataset.read_test_labels(tmp_path)
    assert frame["Target"].tolist() == ["1 3"] and frame["labels"].tolist() == [[1, 3]]
    write_csv(tmp_path / "test_labels.csv", "Id,Target\nt1,30\n")
    with pytest.raises(dataset.DatasetError, match=r"test_labels.csv row 2 \(Id t1\)"):
        dataset.read_test_labels(tmp_path)


# --- finding images -----------------------------------------------------------------------------


def test_image_path_prefers_png_then_other_extensions(tmp_path):
    folder = tmp_path / "train"
    write_png(folder / "x_red.jpg", np.zeros((4, 4), np.uint8))
    assert dataset.image_path(tmp_path, "train", "x", "red") == folder / "x_red.jpg"
    write_png(folder / "x_red.png", np.zeros((4, 4), np.uint8))
    assert dataset.image_path(tmp_path, "train", "x", "red") == folder / "x_red.png"
    write_png(folder / "x_green.tif", np.zeros((4, 4), np.uint8))
    assert dataset.image_path(tmp_path, "train", "x", "green") == folder / "x_green.tif"


def test_image_path_errors_name_id_colour_and_folder(tmp_path):
    (tmp_path / "test").mkdir()
    with pytest.raises(errors.MissingError) as caught:
        dataset.image_path(tmp_path, "test", "abc", "yellow")
    message = str(caught.value)
    assert "abc" in message and "yellow" in message and str(tmp_path / "test") in message
    with pytest.raises(errors.InputError, match="'../abc'"):
        dataset.image_path(tmp_path, "test", "../abc", "red")
    with pytest.raises(errors.InputError, match="unknown colour 'purple'"):
        dataset.image_path(tmp_path, "test", "abc", "purple")


# --- decoding and converting one channel --------------------------------------------------------


def test_grayscale_png_loads_unchanged(tmp_path):
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    loaded = dataset.load_channel(write_png(tmp_path / "a_red.png", image))
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, image)


def test_rgb_png_becomes_the_max_over_colour_channels(tmp_path):
    image = np.zeros((16, 16, 3), np.uint8)  # BGR for cv2: the signal is in the green channel only
    image[:, :, 1] = 180
    image[:8, :, 2] = 90  # and a weaker red signal in the top half
    loaded = dataset.load_channel(write_png(tmp_path / "a_green.png", image))
    assert loaded.shape == (16, 16) and loaded.dtype == np.uint8
    assert (loaded == 180).all()  # full intensity kept, not averaged down
    rgba = np.dstack([image, np.full((16, 16), 255, np.uint8)])
    np.testing.assert_array_equal(dataset.load_channel(write_png(tmp_path / "b_green.png", rgba)), loaded)


def test_rgb_jpeg_like_hpav18_becomes_the_max_over_colour_channels(tmp_path):
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :, 2] = 200  # BGR for cv2: a pure red HPAv18-style "_red.jpg"
    loaded = dataset.load_channel(write_png(tmp_path / "a_red.jpg", image))
    assert loaded.shape == (32, 32) and loaded.dtype == np.uint8
    assert abs(int(loaded.mean()) - 200) <= 4  # JPEG is lossy; an average over RGB would give ~67


def test_16_bit_png_and_tiff_become_8_bit(tmp_path):
    image = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)
    for name in ("a_red.png", "a_red.tif"):
        loaded = dataset.load_channel(write_png(tmp_path / name, image))
        assert loaded.dtype == np.uint8
        np.testing.assert_array_equal(loaded, np.arange(256, dtype=np.uint8).reshape(16, 16))


def test_float_tiff_is_scaled_to_8_bit(tmp_path):
    image = np.linspace(0.0, 1.0, 256, dtype=np.float32).reshape(16, 16)
    loaded = dataset.load_channel(write_png(tmp_path / "a_red.tif", image))
    assert loaded.dtype == np.uint8 and loaded.min() == 0 and loaded.max() == 255


def test_large_image_is_resized_with_area_interpolation(tmp_path):
    checkerboard = (np.indices((1024, 1024)).sum(axis=0) % 2 * 200).astype(np.uint8)
    path = write_png(tmp_path / "big_red.png", checkerboard)
    assert dataset.load_channel(path).shape == (1024, 1024)  # None keeps the native size
    small = dataset.load_channel(path, image_size=64)
    assert small.shape == (64, 64) and small.dtype == np.uint8
    assert np.abs(small.astype(int) - 100).max() <= 1  # area averaging, not nearest-pixel sampling
    tiny = write_png(tmp_path / "tiny_red.png", checkerboard[:8, :8])
    assert dataset.load_channel(tiny, image_size=32).shape == (32, 32)
    with pytest.raises(errors.InputError, match="image_size"):
        dataset.load_channel(path, image_size=0)


def test_unreadable_image_names_the_file(tmp_path):
    path = write_csv(tmp_path / "a_red.png", np.random.default_rng(0).bytes(500))
    with pytest.raises(dataset.ImageError, match="a_red.png: not a readable image"):
        dataset.load_channel(path)


def test_empty_image_file_names_the_file(tmp_path):
    path = write_csv(tmp_path / "a_red.png", b"")
    with pytest.raises(dataset.ImageError, match=r"a_red.png: empty file \(0 bytes\)"):
        dataset.load_channel(path)


@pytest.mark.parametrize("keep", ["half", "all_but_iend"])
def test_truncated_png_is_detected(tmp_path, keep):
    data = noise_png_bytes()
    data = data[: len(data) // 2] if keep == "half" else data[:-12]
    path = write_csv(tmp_path / "a_red.png", data)
    with pytest.raises(dataset.ImageError, match="a_red.png: truncated PNG"):
        dataset.load_channel(path)


def test_truncated_jpeg_is_detected(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ok, buffer = cv2.imencode(".jpg", image)
    data = buffer.tobytes()
    path = write_csv(tmp_path / "a_red.jpg", data[: len(data) * 2 // 3])
    with pytest.raises(dataset.ImageError, match="a_red.jpg: truncated JPEG"):
        dataset.load_channel(path)
    # a complete JPEG with bytes after its end marker is fine
    path = write_csv(tmp_path / "b_red.jpg", data + b"\0" * 2000)
    assert dataset.load_channel(path).shape == (64, 64)


def test_missing_image_file_raises_file_not_found(tmp_path):
    with pytest.raises(errors.MissingError, match="nothing_red.png"):
        dataset.load_channel(tmp_path / "nothing_red.png")


# --- samples ------------------------------------------------------------------------------------


def test_load_sample_channel_modes_and_order(tmp_path):
    root = make_dataset(tmp_path / "data")
    rgby = dataset.load_sample(root, "train", "train-a", channels="rgby")
    assert rgby.shape == (16, 16, 4) and rgby.dtype == np.uint8
    np.testing.assert_array_equal(rgby[0, 0], [10, 20, 30, 40])
    rgb = dataset.load_sample(root, "train", "train-a", channels="rgb")
    assert rgb.shape == (16, 16, 3)
    np.testing.assert_array_equal(rgb[5, 5], [10, 20, 30])
    test_sample = dataset.load_sample(root, "test", "test-b", image_size=8)
    assert test_sample.shape == (8, 8, 4)
    np.testing.assert_array_equal(test_sample[3, 3], [11, 21, 31, 41])
    assert set(dataset.CHANNEL_MODES) == {"rgby", "rgb"}
    assert dataset.CHANNEL_MODES["rgb"] == ("red", "green", "blue")


def test_load_sample_gives_one_size_when_channels_differ(tmp_path):
    root = make_dataset(tmp_path / "data")
    write_png(root / "train" / "train-a_green.png", np.full((64, 64), 77, np.uint8))  # an odd one out
    (root / "train" / "train-a_blue.png").unlink()
    rgb_blue = np.zeros((16, 16, 3), np.uint8)
    rgb_blue[:, :, 0] = 123  # BGR: pure blue, as an HPAv18 "_blue.jpg"
    write_png(root / "train" / "train-a_blue.jpg", rgb_blue)
    sample = dataset.load_sample(root, "train", "train-a")
    assert sample.shape == (16, 16, 4)  # the red channel's native size
    assert (sample[:, :, 1] == 77).all()
    assert np.abs(sample[:, :, 2].astype(int) - 123).max() <= 3  # JPEG is lossy


def test_load_sample_rejects_unknown_channel_mode(tmp_path):
    root = make_dataset(tmp_path / "data")
    with pytest.raises(errors.InputError, match="unknown channel mode 'bgr'.*rgby"):
        dataset.load_sample(root, "train", "train-a", channels="bgr")


def test_load_sample_names_the_missing_channel(tmp_path):
    root = make_dataset(tmp_path / "data")
    (root / "test" / "test-a_yellow.png").unlink()
    with pytest.raises(errors.MissingError, match="yellow image for Id test-a"):
        dataset.load_sample(root, "test", "test-a")


# --- validating a whole folder ------------------------------------------------------------------


def test_validate_accepts_a_good_folder_and_ignores_extra_images(tmp_path):
    root = make_dataset(tmp_path / "data")
    write_png(root / "train" / "not-in-csv_red.png", np.zeros((16, 16), np.uint8))
    assert dataset.validate(root, progress=False) == []


def test_validate_reports_every_problem_of_a_folder_at_once(tmp_path):
    train = {**TRAIN_TARGETS, "train-d": "1", "train-e": "2"}
    root = make_dataset(tmp_path / "data", train=train, test=("t1", "t2", "t3"))
    with open(root / "train.csv", "a") as file:
        file.write("train-a,3\nbad-label,28\n")  # duplicate Id (rows 2 and 7), label 28 (row 8)
    write_csv(root / "sample_submission.csv", "Id,Predicted\nt1,0\nt2,0\nt3,0\nghost,0\n")
    (root / "train" / "train-a_green.png").unlink()
    write_csv(root / "train" / "train-b_blue.png", np.random.default_rng(1).bytes(300))
    data = noise_png_bytes()
    write_csv(root / "train" / "train-c_yellow.png", data[: len(data) // 2])
    write_csv(root / "test" / "t2_red.png", b"")
    write_csv(root / "train" / "train-d_red.png", data[: len(data) // 2])
    problems = dataset.validate(root, progress=False)
    text = "\n".join(problems)
    expected = [
        "train.csv rows 2 and 7: duplicate Id 'train-a'",
        "train.csv row 8 (Id bad-label)",
        "Id bad-label (from train.csv) has no images at all",
        "Id train-a (from train.csv) has no green image",
        "train-b_blue.png: not a readable image",
        "train-c_yellow.png: truncated PNG",
        "train-d_red.png: truncated PNG",
        "t2_red.png: empty file (0 bytes)",
        "Id ghost (from sample_submission.csv) has no images",
    ]
    for piece in expected:
        assert piece in text, (piece, text)
    assert len(problems) == len(expected)


def test_validate_reports_missing_files_and_folders(tmp_path):
    assert dataset.validate(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: data folder not found"]
    tmp_path.joinpath("empty").mkdir()
    problems = dataset.validate(tmp_path / "empty", progress=False)
    text = "\n".join(problems)
    expected = [
        "train.csv: file not found",
        "sample_submission.csv: file not found",
        "train: image folder not found",
        "test: image folder not found",
    ]
    for piece in expected:
        assert piece in text, (piece, text)


def test_validate_without_image_checks_only_looks_for_files(tmp_path):
    root = make_dataset(tmp_path / "data")
    write_csv(root / "train" / "train-a_red.png", b"")
    assert dataset.validate(root, check_images=False) == []
    assert len(dataset.validate(root, progress=False)) == 1


def test_validate_checks_test_labels_csv_when_present(tmp_path):
    root = make_dataset(tmp_path / "data")
    write_csv(root / "test_labels.csv", "Id,Target\ntest-a,1\ntest-b,\n")
    problems = dataset.validate(root, progress=False)
    assert problems == ["test_labels.csv row 3 (Id test-b): empty Target (expected labels 0..27)"]


def test_main_validate_exit_codes_and_output(tmp_path, capsys):
    root = make_dataset(tmp_path / "data")
    assert dataset.main_validate(root) == 0
    output = capsys.readouterr().out
    assert output.startswith("OK: 3 train, 2 test images checked")
    (root / "test" / "test-b_blue.png").unlink()
    write_csv(root / "train" / "train-c_red.png", b"")
    write_csv(root / "train.csv", "Id,Target\ntrain-a,0\ntrain-b,x\ntrain-c,1\n")
    assert dataset.main_validate(root) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any("train.csv row 3 (Id train-b)" in line for line in lines)
    assert any("Id test-b (from sample_submission.csv) has no blue image" in line for line in lines)
    assert any("train-c_red.png: empty file" in line for line in lines)
    assert lines[-1] == f"3 problems found in {root}"


def test_dataset_module_imports_neither_tensorflow_nor_synthetic():
    code = (
        "import sys, hpa_utils.dataset; "
        "print('tensorflow' in sys.modules, 'hpa_utils.dataset.synthetic' in sys.modules)"
    )
    repo = environment.REPO_ROOT
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    assert result.stdout.split() == ["False", "False"]
