"""Bad input end to end: broken copies of the embedded dataset through the reader, the validator and the runner.

One tiny embedded dataset is generated per session; each case copies it, breaks one thing, and
asserts either the documented conversion (the data still reads, with the right values) or a clear
error whose message names the culprit (file, row, Id, colour, column, parameter).
"""

import contextlib
import dataclasses
import hashlib
import io
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hpa_utils import cli, dataset
from hpa_utils.dataset import synthetic
from hpa_utils.system import environment

REPO = environment.REPO_ROOT


@dataclasses.dataclass(frozen=True)
class Embedded:
    """The session's pristine embedded dataset and its Ids, in file order."""

    root: Path
    train_ids: tuple
    test_ids: tuple


@pytest.fixture(scope="session")
def embedded(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedded") / "data"
    synthetic.generate(root, n_train=12, n_test=4, image_size=64, seed=0, min_per_class=1, workers=1, progress=False)
    ids = {name: tuple(pd.read_csv(root / name, dtype=str)["Id"]) for name in ("train.csv", "sample_submission.csv")}
    return Embedded(root, ids["train.csv"], ids["sample_submission.csv"])


@pytest.fixture
def data(embedded, tmp_path):
    """A private copy of the embedded dataset, to break."""
    return Path(shutil.copytree(embedded.root, tmp_path / "data"))


# --- ways to break a copy ------------------------------------------------------------------------


def names(embedded) -> dict:
    """Placeholders for the expected messages: {train0}.. {train11}, {test0}.. {test3}."""
    result = {f"train{index}": image_id for index, image_id in enumerate(embedded.train_ids)}
    result.update({f"test{index}": image_id for index, image_id in enumerate(embedded.test_ids)})
    return result


def set_row(path: Path, row_number: int, text: str) -> None:
    """Replace line ``row_number`` (the header is row 1) of a CSV file."""
    lines = path.read_text().splitlines()
    lines[row_number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def set_target(data: Path, row_number: int, target: str) -> None:
    image_id = (data / "train.csv").read_text().splitlines()[row_number - 1].split(",")[0]
    set_row(data / "train.csv", row_number, f"{image_id},{target}")


def rename_train_id(data: Path, row_number: int, new_id: str) -> None:
    target = (data / "train.csv").read_text().splitlines()[row_number - 1].split(",")[1]
    set_row(data / "train.csv", row_number, f"{new_id},{target}")


def channel(data: Path, split: str, image_id: str, color: str) -> Path:
    return data / split / f"{image_id}_{color}.png"


def read_gray(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def append_rows(path: Path, *rows: str) -> None:
    with open(path, "a") as file:
        file.write("".join(row + "\n" for row in rows))


# --- the error cases -------------------------------------------------------------------------------


def read_train(data, ids):
    return dataset.read_train_labels(data)


def read_submission(data, ids):
    return dataset.read_sample_submission(data)


def load_train(index):
    return lambda data, ids: dataset.load_sample(data, "train", ids[f"train{index}"])


def load_test(image_id):
    return lambda data, ids: dataset.load_sample(data, "test", image_id.format(**ids))


@dataclasses.dataclass(frozen=True)
class ErrorCase:
    """``breaks`` the copy; ``reads`` it as a notebook would and must raise; both the error and
    validate()'s one problem contain every ``expected`` piece ({train3} etc. become Ids)."""

    breaks: Callable
    reads: Callable
    expected: tuple


def _missing_column(data, ids):
    (data / "train.csv").write_text((data / "train.csv").read_text().replace("Id,Target", "Id,Label", 1))


def _duplicate_id(data, ids):
    append_rows(data / "train.csv", f"{ids['train0']},3")


def _missing_channel(data, ids):
    channel(data, "train", ids["train4"], "green").unlink()


def _unreadable_png(data, ids):
    channel(data, "train", ids["train5"], "blue").write_bytes(np.random.default_rng(1).bytes(500))


def _corrupt_png_body(data, ids):
    """Signature, header and end chunk intact, compressed pixel data scrambled (a bad disk or transfer)."""
    path = channel(data, "train", ids["train5"], "blue")
    content = bytearray(path.read_bytes())
    content[200:600] = bytes(value ^ 0x5A for value in content[200:600])
    path.write_bytes(bytes(content))


def _truncated_png(data, ids):
    path = channel(data, "train", ids["train6"], "yellow")
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])


def _empty_png(data, ids):
    channel(data, "test", ids["test1"], "red").write_bytes(b"")


def _ghost_test_id(data, ids):
    append_rows(data / "sample_submission.csv", "ghost-id,0")


def _missing_test_colour(data, ids):
    channel(data, "test", ids["test2"], "yellow").unlink()


def _empty_train_csv(data, ids):
    (data / "train.csv").write_bytes(b"")


def _header_only_train_csv(data, ids):
    (data / "train.csv").write_text("Id,Target\n")


def _comma_in_target(data, ids):
    set_row(data / "train.csv", 4, f"{ids['train2']},1,2")


def _latin1_train_csv(data, ids):
    with open(data / "train.csv", "ab") as file:
        file.write("caf\xe9,1\n".encode("latin-1"))


def _missing_image_folder(data, ids):
    shutil.rmtree(data / "test")


ERROR_CASES = {
    "missing_column": ErrorCase(
        _missing_column, read_train, ("train.csv: missing column 'Target' (columns found: 'Id', 'Label')",)
    ),
    "empty_target": ErrorCase(
        lambda data, ids: set_target(data, 3, ""), read_train, ("train.csv row 3 (Id {train1}): empty Target",)
    ),
    "non_integer_target": ErrorCase(
        lambda data, ids: set_target(data, 4, "1 x"),
        read_train,
        ("train.csv row 4 (Id {train2}): Target '1 x' has a non-integer label 'x'",),
    ),
    "label_above_27": ErrorCase(
        lambda data, ids: set_target(data, 5, "0 28"),
        read_train,
        ("train.csv row 5 (Id {train3}): Target '0 28' has label 28 outside 0..27",),
    ),
    "negative_label": ErrorCase(
        lambda data, ids: set_target(data, 5, "-1"),
        read_train,
        ("train.csv row 5 (Id {train3}): Target '-1' has label -1 outside 0..27",),
    ),
    "duplicate_id": ErrorCase(_duplicate_id, read_train, ("train.csv rows 2 and 14: duplicate Id '{train0}'",)),
    "id_with_slash": ErrorCase(
        lambda data, ids: rename_train_id(data, 6, f"sub/{ids['train4']}"),
        read_train,
        ("train.csv row 6: Id 'sub/{train4}' contains a path separator",),
    ),
    "id_with_backslash": ErrorCase(
        lambda data, ids: rename_train_id(data, 6, "sub\\x"),
        read_train,
        ("train.csv row 6: Id 'sub\\\\x' contains a path separator",),
    ),
    "id_with_dotdot": ErrorCase(
        lambda data, ids: rename_train_id(data, 6, ".."), read_train, ("train.csv row 6: Id '..' contains '..'",)
    ),
    "id_with_parent_path": ErrorCase(
        lambda data, ids: rename_train_id(data, 6, "../../etc/passwd"),
        read_train,
        ("train.csv row 6: Id '../../etc/passwd' contains a path separator",),
    ),
    "submission_id_with_dotdot": ErrorCase(
        lambda data, ids: append_rows(data / "sample_submission.csv", "..,0"),
        read_submission,
        ("sample_submission.csv row 6: Id '..' contains '..'",),
    ),
    "comma_in_target": ErrorCase(
        _comma_in_target, read_train, ("train.csv row 4: 3 fields but the header has 2 (a comma inside a value?)",)
    ),
    "not_utf8": ErrorCase(_latin1_train_csv, read_train, ("train.csv: not UTF-8 text",)),
    "empty_train_csv": ErrorCase(
        _empty_train_csv, read_train, ("train.csv: empty file (expected a header line Id,Target)",)
    ),
    "header_only_train_csv": ErrorCase(_header_only_train_csv, read_train, ("train.csv: no rows after the header",)),
    "missing_channel_file": ErrorCase(_missing_channel, load_train(4), ("no green image for Id {train4}",)),
    "unreadable_png": ErrorCase(_unreadable_png, load_train(5), ("{train5}_blue.png: not a readable image",)),
    "corrupt_png_body": ErrorCase(
        _corrupt_png_body, load_train(5), ("{train5}_blue.png: not a readable image, or a truncated or corrupt one",)
    ),
    "truncated_png": ErrorCase(_truncated_png, load_train(6), ("{train6}_yellow.png: truncated PNG",)),
    "empty_png": ErrorCase(_empty_png, load_test("{test1}"), ("{test1}_red.png: empty file (0 bytes)",)),
    "submission_id_without_images": ErrorCase(_ghost_test_id, load_test("ghost-id"), ("Id ghost-id",)),
    "test_image_missing_one_colour": ErrorCase(
        _missing_test_colour, load_test("{test2}"), ("no yellow image for Id {test2}",)
    ),
    "missing_image_folder": ErrorCase(
        _missing_image_folder, load_test("{test0}"), ("test: no red image for Id {test0}",)
    ),
}
# what validate() says where its wording differs from the reader's
VALIDATE_EXPECTED = {
    "missing_channel_file": ("Id {train4} (from train.csv) has no green image",),
    "submission_id_without_images": ("Id ghost-id (from sample_submission.csv) has no images at all",),
    "test_image_missing_one_colour": ("Id {test2} (from sample_submission.csv) has no yellow image",),
    "missing_image_folder": ("test: image folder not found",),
}


@pytest.mark.parametrize("case_id", list(ERROR_CASES))
def test_broken_copy_gives_a_clear_error_naming_the_culprit(case_id, embedded, data):
    case = ERROR_CASES[case_id]
    ids = names(embedded)
    case.breaks(data, ids)

    with pytest.raises((ValueError, FileNotFoundError)) as caught:
        case.reads(data, ids)
    message = str(caught.value)
    for piece in case.expected:
        assert piece.format(**ids) in message, (piece, message)
    assert "Traceback" not in message

    problems = dataset.validate(data, progress=False)
    assert len(problems) == 1, problems
    for piece in VALIDATE_EXPECTED.get(case_id, case.expected):
        assert piece.format(**ids) in problems[0], (piece, problems)


# --- the conversion cases --------------------------------------------------------------------------


def _other_size(data, ids):
    path = channel(data, "train", ids["train0"], "green")
    large = cv2.resize(read_gray(path), (100, 100), interpolation=cv2.INTER_LINEAR)
    assert cv2.imwrite(str(path), large)


def _check_other_size(data, ids, original):
    path = channel(data, "train", ids["train0"], "green")
    large = read_gray(path)
    assert large.shape == (100, 100)
    sample = dataset.load_sample(data, "train", ids["train0"])
    assert sample.shape == (64, 64, 4) and sample.dtype == np.uint8
    np.testing.assert_array_equal(sample[:, :, 1], cv2.resize(large, (64, 64), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(sample[:, :, 0], read_gray(channel(original, "train", ids["train0"], "red")))
    assert dataset.load_sample(data, "train", ids["train0"], image_size=32).shape == (32, 32, 4)


def _rgb_png(data, ids):
    path = channel(data, "train", ids["train1"], "red")
    gray = read_gray(path)
    assert cv2.imwrite(str(path), np.stack([gray // 2, gray, gray // 3], axis=2))  # signal in one colour channel


def _check_rgb_png(data, ids, original):
    path = channel(data, "train", ids["train1"], "red")
    with Image.open(path) as image:
        assert image.mode == "RGB"
    sample = dataset.load_sample(data, "train", ids["train1"])
    assert sample.dtype == np.uint8 and sample.shape == (64, 64, 4)
    np.testing.assert_array_equal(sample[:, :, 0], read_gray(channel(original, "train", ids["train1"], "red")))


def _sixteen_bit_png(data, ids):
    path = channel(data, "train", ids["train2"], "blue")
    assert cv2.imwrite(str(path), read_gray(path).astype(np.uint16) * 257)  # 0..255 -> 0..65535


def _check_sixteen_bit_png(data, ids, original):
    path = channel(data, "train", ids["train2"], "blue")
    assert read_gray(path).dtype == np.uint16
    sample = dataset.load_sample(data, "train", ids["train2"])
    assert sample.dtype == np.uint8
    np.testing.assert_array_equal(sample[:, :, 2], read_gray(channel(original, "train", ids["train2"], "blue")))


def _jpeg_instead_of_png(data, ids):
    path = channel(data, "test", ids["test0"], "yellow")
    gray = read_gray(path)
    path.unlink()
    assert cv2.imwrite(str(path.with_suffix(".jpg")), gray, [cv2.IMWRITE_JPEG_QUALITY, 100])


def _check_jpeg(data, ids, original):
    assert dataset.image_path(data, "test", ids["test0"], "yellow").name == f"{ids['test0']}_yellow.jpg"
    sample = dataset.load_sample(data, "test", ids["test0"])
    assert sample.dtype == np.uint8 and sample.shape == (64, 64, 4)
    expected = read_gray(channel(original, "test", ids["test0"], "yellow")).astype(int)
    difference = np.abs(sample[:, :, 3].astype(int) - expected)
    assert difference.mean() < 1.0 and difference.max() <= 8  # JPEG is lossy, at quality 100 barely


def _label_file_bytes(data, transform):
    for name in ("train.csv", "sample_submission.csv"):
        path = data / name
        path.write_bytes(transform(path.read_bytes()))


def _check_same_labels(data, ids, original):
    pd.testing.assert_frame_equal(dataset.read_train_labels(data), dataset.read_train_labels(original))
    pd.testing.assert_frame_equal(dataset.read_sample_submission(data), dataset.read_sample_submission(original))


def _extra_column(data, ids):
    lines = (data / "train.csv").read_text().splitlines()
    lines = [lines[0] + ",Notes"] + [f"{line},note {number}" for number, line in enumerate(lines[1:])]
    (data / "train.csv").write_text("\n".join(lines) + "\n")


CONVERSION_CASES = {
    "image_of_another_size": (_other_size, _check_other_size),
    "rgb_png": (_rgb_png, _check_rgb_png),
    "sixteen_bit_png": (_sixteen_bit_png, _check_sixteen_bit_png),
    "jpeg_instead_of_png": (_jpeg_instead_of_png, _check_jpeg),
    "utf8_bom": (lambda data, ids: _label_file_bytes(data, lambda text: b"\xef\xbb\xbf" + text), _check_same_labels),
    "windows_line_endings": (
        lambda data, ids: _label_file_bytes(data, lambda text: text.replace(b"\n", b"\r\n")),
        _check_same_labels,
    ),
    "bom_and_crlf_and_blank_lines": (
        lambda data, ids: _label_file_bytes(data, lambda text: b"\xef\xbb\xbf" + text.replace(b"\n", b"\r\n\r\n")),
        _check_same_labels,
    ),
    "extra_column": (_extra_column, _check_same_labels),
}


@pytest.mark.parametrize("case_id", list(CONVERSION_CASES))
def test_broken_copy_is_converted_as_documented(case_id, embedded, data):
    breaks, check = CONVERSION_CASES[case_id]
    ids = names(embedded)
    breaks(data, ids)
    check(data, ids, embedded.root)
    assert dataset.validate(data, progress=False) == []


def test_extra_column_is_ignored(embedded, data):
    _extra_column(data, names(embedded))
    assert list(dataset.read_train_labels(data).columns) == ["Id", "Target", "labels"]


# --- several problems at once ----------------------------------------------------------------------


def test_validate_reports_every_problem_of_a_copy_at_once(embedded, data):
    ids = names(embedded)
    set_target(data, 3, "")
    set_target(data, 4, "7 banana")
    _duplicate_id(data, ids)
    _missing_channel(data, ids)
    _truncated_png(data, ids)
    _empty_png(data, ids)
    _ghost_test_id(data, ids)
    expected = [
        "train.csv row 3 (Id {train1}): empty Target",
        "train.csv row 4 (Id {train2}): Target '7 banana' has a non-integer label 'banana'",
        "train.csv rows 2 and 14: duplicate Id '{train0}'",
        "Id {train4} (from train.csv) has no green image",
        "{train6}_yellow.png: truncated PNG",
        "{test1}_red.png: empty file (0 bytes)",
        "Id ghost-id (from sample_submission.csv) has no images at all",
    ]
    problems = dataset.validate(data, progress=False)
    text = "\n".join(problems)
    for piece in expected:
        assert piece.format(**ids) in text, (piece, text)
    assert len(problems) == len(expected), problems

    with pytest.raises(dataset.DatasetError) as caught:  # the reader also collects all of its file's problems
        dataset.read_train_labels(data)
    assert len(caught.value.problems) == 3

    result = run_validate(data)
    assert result.returncode == 1
    assert f"{len(expected)} problems found in {data}" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


# --- `python -m hpa_utils validate DIR` ----------------------------------------------------------


def run_command(*arguments: str) -> subprocess.CompletedProcess:
    """``python -m hpa_utils ARGUMENTS`` run in this process (``cli.main``, what ``__main__`` calls), from the
    repository: its exit status and what it printed. The command line as its own process, exit status included, is
    run by the pipeline's tests (tests/test_pipeline.py, tests/test_faults.py)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.chdir(REPO), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = cli.main(list(arguments))
        except SystemExit as exit:  # argparse's usage errors
            status = exit.code
    return subprocess.CompletedProcess(arguments, status, stdout.getvalue(), stderr.getvalue())


def run_validate(folder, *extra):
    return run_command("validate", str(folder), *extra)


def test_validate_command_accepts_the_embedded_dataset(embedded):
    result = run_validate(embedded.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: 12 train, 4 test images checked (64 channel files decoded)")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "case_id", ["missing_column", "truncated_png", "submission_id_without_images", "empty_train_csv", "id_with_dotdot"]
)
def test_validate_command_prints_the_problem_without_traceback(case_id, embedded, data):
    ids = names(embedded)
    ERROR_CASES[case_id].breaks(data, ids)
    result = run_validate(data)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    for piece in VALIDATE_EXPECTED.get(case_id, ERROR_CASES[case_id].expected):
        assert piece.format(**ids) in result.stdout, (piece, output)
    assert result.stdout.rstrip().endswith(f"1 problem found in {data}")


def test_validate_command_on_a_missing_folder(tmp_path):
    result = run_validate(tmp_path / "nowhere")
    assert result.returncode == 1
    assert f"{tmp_path / 'nowhere'}: data folder not found" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


# --- the runner's up-front checks ------------------------------------------------------------------


def run_pipeline(*arguments):
    return run_command("run", *arguments)


def fingerprint(folder: Path) -> dict:
    """{relative path: (size, mtime_ns, sha1)} of everything below ``folder``."""
    return {
        str(path.relative_to(folder)): (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else "",
        )
        for path in sorted(folder.rglob("*"))
    }


def _broken_data_dir(case_id):
    def arguments(tmp_path, embedded):
        copy = Path(shutil.copytree(embedded.root, tmp_path / "data"))
        ERROR_CASES[case_id].breaks(copy, names(embedded))
        return ["--preset", "smoke", "--data-dir", str(copy)]

    return arguments


RUNNER_CASES = {
    "parameter_of_the_wrong_type": (
        lambda tmp_path, embedded: ["--preset", "smoke", "-p", "IMAGE_SIZE=big"],
        ["error: parameter IMAGE_SIZE of 01_baseline expects int, got 'big' (str) from the command line"],
    ),
    "wrong_type_for_the_last_stage_only": (  # refused before 00..03 run, not after
        lambda tmp_path, embedded: ["--preset", "smoke", "-p", "FOLDS=3"],
        ["error: parameter FOLDS of 04_kfold expects list, got 3 (int) from the command line"],
    ),
    "bool_for_an_int": (
        lambda tmp_path, embedded: ["--preset", "smoke", "-p", "EPOCHS=true"],
        ["error: parameter EPOCHS of 01_baseline expects int, got True (bool)"],
    ),
    "parameter_value_not_yaml": (
        lambda tmp_path, embedded: ["--preset", "smoke", "-p", "FOLDS=[0,"],
        ["error: -p 'FOLDS=[0,': the value is not valid YAML"],
    ),
    "parameter_without_value": (
        lambda tmp_path, embedded: ["--preset", "smoke", "-p", "EPOCHS"],
        ["error: -p 'EPOCHS': expected NAME=VALUE"],
    ),
    "parameter_no_notebook_declares": (
        lambda tmp_path, embedded: ["--preset", "smoke", "-p", "IMAGE_SIZ=64"],
        ["error: -p sets IMAGE_SIZ, which no notebook declares"],
    ),
    "unknown_preset": (
        lambda tmp_path, embedded: ["--preset", "nope"],
        ["error: preset 'nope' not found", "available presets: demo, full, smoke"],
    ),
    "unknown_stage": (
        lambda tmp_path, embedded: ["--preset", "smoke", "--only", "07"],
        ["error: --only 07: no such stage"],
    ),
    "data_dir_not_found": (
        lambda tmp_path, embedded: ["--preset", "smoke", "--data-dir", str(tmp_path / "nowhere")],
        ["error: --data-dir", "nowhere: folder not found"],
    ),
    "data_dir_missing_column": (
        _broken_data_dir("missing_column"),
        ["has 1 problem", "train.csv: missing column 'Target' (columns found: 'Id', 'Label')"],
    ),
    "data_dir_missing_channel_file": (
        _broken_data_dir("missing_channel_file"),
        ["has 1 problem", "Id {train4} (from train.csv) has no green image"],
    ),
    "data_dir_ghost_test_id": (
        _broken_data_dir("submission_id_without_images"),
        ["Id ghost-id (from sample_submission.csv) has no images at all"],
    ),
    "resume_of_no_run": (
        lambda tmp_path, embedded: ["--resume", str(tmp_path / "nowhere")],
        ["error: --resume", "no run.json there"],
    ),
}


@pytest.mark.parametrize("case_id", list(RUNNER_CASES))
def test_runner_refuses_bad_input_before_creating_the_run_folder(case_id, embedded, tmp_path):
    make_arguments, expected = RUNNER_CASES[case_id]
    out = tmp_path / "run"
    arguments = make_arguments(tmp_path, embedded)
    if "--resume" not in arguments:
        arguments += ["--out", str(out)]
    result = run_pipeline(*arguments)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for piece in expected:
        assert piece.format(**names(embedded)) in result.stderr, (piece, result.stderr)
    assert not out.exists()


def test_runner_refuses_an_out_under_a_regular_file(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = run_pipeline("--preset", "smoke", "--out", str(tmp_path / "file" / "run"))
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert f"error: --out {tmp_path / 'file' / 'run'}: cannot write there" in result.stderr
    assert (tmp_path / "file").read_text() == "not a folder"


def test_runner_leaves_an_existing_out_untouched(tmp_path):
    out = tmp_path / "earlier-run"
    (out / "01_baseline").mkdir(parents=True)
    (out / "run.json").write_text('{"precious": true}\n')
    (out / "01_baseline" / "model.h5").write_bytes(b"\x89HDF\r\n" + bytes(range(256)))
    before = fingerprint(out)
    result = run_pipeline("--preset", "smoke", "--out", str(out))
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert f"error: --out {out} already exists and is not empty; nothing was touched" in result.stderr
    assert f"--resume {out}" in result.stderr
    assert fingerprint(out) == before


def test_runner_refuses_an_out_that_is_a_file(tmp_path):
    out = tmp_path / "run"
    out.write_text("a file, not a folder")
    before = fingerprint(tmp_path)
    result = run_pipeline("--preset", "smoke", "--out", str(out))
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert f"error: --out {out} is a file, not a folder; nothing was touched" in result.stderr
    assert fingerprint(tmp_path) == before
