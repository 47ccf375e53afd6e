"""External HPAv18 data: the downloader over real HTTP (a local server serving `synth --hpav18` output),
near-duplicates, and training stages with EXTERNAL_DIR."""

import functools
import http.server
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pandas as pd
import pytest

from hpa_utils import dataset, errors, stages
from hpa_utils.dataset import cache, external, synthetic
from hpa_utils.dataset.external import downloader
from hpa_utils.dataset.synthetic import hpav18
from hpa_utils.pipeline import training_data
from hpa_utils.results import evaluation
from hpa_utils.system import environment

REPO = environment.REPO_ROOT


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; records every path asked; answers 500 where the test says so."""

    def do_GET(self):  # noqa: N802 (the standard library's name)
        server = self.server
        server.requests.append(self.path)
        time.sleep(server.delay)
        if self.path in server.always_fail or self.path in server.fail_once:
            server.fail_once.discard(self.path)
            self.send_error(500, "planned server error")
            return
        super().do_GET()

    def log_message(self, *arguments):
        pass


@pytest.fixture
def server(tmp_path):
    """An HPAv18-style folder of 8 embedded samples served on 127.0.0.1 (a free port)."""
    source = hpav18.write_hpav18(tmp_path / "hpav18", 8, image_size=64, seed=3)
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(source / hpav18.IMAGES_FOLDER))
    )
    httpd.requests, httpd.delay, httpd.always_fail, httpd.fail_once = [], 0.0, set(), set()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.source = source
    yield httpd
    httpd.shutdown()


def small(server) -> "external.Settings":
    """The local server, at 32 px."""
    return external.Settings(server.base_url, size=32)


def labels_of(source):
    return pd.read_csv(source / hpav18.LABELS_CSV, dtype=str)


def test_the_server_layout_is_the_v18_address_pattern():
    assert downloader.image_url(downloader.V18_URL, "10580_1610_C1_1", "green") == (
        "http://v18.proteinatlas.org/images/10580/1610_C1_1_green.jpg"
    )
    with pytest.raises(errors.InputError, match="not an HPAv18 Id"):
        downloader.server_path("abcdef", "red")
    ids = hpav18.make_hpav18_ids(500, seed=1)
    assert len(set(ids)) == 500 and ids == hpav18.make_hpav18_ids(500, seed=1)
    assert all(len(image_id.split("_")) == 4 for image_id in ids)


def test_download_writes_a_folder_that_validate_accepts(server, tmp_path):
    out = tmp_path / "external"
    summary = external.download(server.source / hpav18.LABELS_CSV, out, settings=small(server), workers=3)
    assert summary == {"done": 8, "kept": 0, "failed": 0, "complete": 8, "reasons": {}}
    assert dataset.validate(out, training_only=True, progress=False) == []
    table = dataset.read_train_labels(out)
    assert table["Id"].tolist() == labels_of(server.source)["Id"].tolist()
    # Each stain comes back as the 8-bit channel it was drawn as (a JPEG's colour planes, their maximum).
    image_id = table["Id"][0]
    jpeg = cv2.imread(str(server.source / "images" / downloader.server_path(image_id, "yellow")))
    expected = cv2.resize(jpeg.max(axis=2), (32, 32), interpolation=cv2.INTER_AREA)
    written = cv2.imread(str(out / "train" / f"{image_id}_yellow.png"), cv2.IMREAD_UNCHANGED)
    assert written.shape == (32, 32) and written.dtype == np.uint8
    assert np.abs(written.astype(int) - expected).max() <= 1
    again = external.download(server.source / hpav18.LABELS_CSV, out, settings=small(server))
    assert again["kept"] == 8 and again["done"] == 0 and len(server.requests) == 32  # nothing asked twice


def test_failures_are_retried_named_and_left_out_of_train_csv(server, tmp_path):
    ids = labels_of(server.source)["Id"].tolist()
    paths = {image_id: "/" + downloader.server_path(image_id, "green") for image_id in ids}
    (server.source / "images" / paths[ids[0]][1:]).unlink()  # 404
    truncated = server.source / "images" / paths[ids[1]][1:]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    server.always_fail.add(paths[ids[2]])
    server.fail_once.add(paths[ids[3]])  # passes on the retry
    out = tmp_path / "external"
    summary = external.download(
        server.source / hpav18.LABELS_CSV, out, settings=external.Settings(server.base_url, 32, retries=2, backoff=0.01)
    )
    assert summary["failed"] == 3 and summary["done"] == 5 and summary["complete"] == 5
    assert summary["reasons"] == {"HTTP 404": 1, "truncated image": 1, "HTTP 500": 1}
    assert server.requests.count(paths[ids[0]]) == 1  # a 404 is not asked again
    assert server.requests.count(paths[ids[2]]) == 3 and server.requests.count(paths[ids[3]]) == 2
    listed = dataset.read_train_labels(out)["Id"].tolist()
    assert listed == ids[3:]
    failures = pd.read_csv(out / downloader.FAILURES_CSV)
    assert sorted(failures["Id"]) == sorted(ids[:3]) and set(failures["colour"]) == {"green"}
    report = downloader.describe(summary, out)
    assert "1 image: HTTP 404" in report and "run the same command again" in report


def test_a_killed_download_continues_without_fetching_again_what_was_done(server, tmp_path):
    out = tmp_path / "external"
    server.delay = 0.15
    command = [sys.executable, "-m", "hpa_utils", "external", "download", "--labels"]
    command += [str(server.source / hpav18.LABELS_CSV), "--out", str(out), "--base-url", server.base_url]
    command += ["--size", "32", "--workers", "2"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(list((out / "train").glob("*.png"))) < 6 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = {path.name for path in (out / "train").glob("*.png")}
    assert 6 <= len(before) < 32, "killed in the middle"
    server.requests.clear()
    server.delay = 0.0
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    asked = {path.rsplit("/", 1)[-1].replace(".jpg", ".png") for path in server.requests}
    assert len(asked) == 32 - len(before) and not asked & {name.split("_", 1)[1] for name in before}
    assert dataset.validate(out, training_only=True, progress=False) == []  # nothing half-written counted
    assert len(dataset.read_train_labels(out)) == 8


def planted_copy(image: np.ndarray) -> np.ndarray:
    """A near-copy as external data holds them: resized down and up again, and JPEG re-encoded per channel."""
    side = image.shape[0]
    small = cv2.resize(image, (side * 3 // 4, side * 3 // 4), interpolation=cv2.INTER_AREA)
    copy = cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)
    for channel in range(copy.shape[2]):
        _, encoded = cv2.imencode(".jpg", copy[:, :, channel], (cv2.IMWRITE_JPEG_QUALITY, 80))
        copy[:, :, channel] = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return copy


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    folder = synthetic.generate(
        tmp_path_factory.mktemp("embedded") / "data", 60, 12, image_size=64, seed=5, progress=False
    )
    table = dataset.read_train_labels(folder)
    cache_dir = tmp_path_factory.mktemp("cache")
    images = cache.build_cache(folder, "train", table["Id"], 64, "rgby", cache_dir=cache_dir)
    return folder, table, np.asarray(images)


def test_planted_near_duplicates_are_found_and_different_images_are_not(embedded):
    _, _, images = embedded
    planted = np.stack([planted_copy(images[index]) for index in (3, 7, 11)])
    others = images[30:]  # other fields of view
    found = external.near_duplicates(np.concatenate([planted, others]), [images[:20]])
    assert found.tolist() == [True, True, True] + [False] * len(others)
    distances = external.duplicates.hamming(external.green_hashes(images), external.green_hashes(images))
    off_diagonal = distances[~np.eye(len(images), dtype=bool)]
    assert off_diagonal.min() > external.duplicates.MAX_DISTANCE  # 60 distinct images: no false alarm


def write_external_folder(folder, images, ids, targets):
    (folder / "train").mkdir(parents=True)
    for image_id, image in zip(ids, images):
        for position, color in enumerate(dataset.COLORS):
            cv2.imwrite(str(folder / "train" / f"{image_id}_{color}.png"), image[:, :, position])
    rows = "".join(f"{image_id},{target}\n" for image_id, target in zip(ids, targets))
    (folder / "train.csv").write_text("Id,Target\n" + rows)


def test_a_stage_trains_on_external_images_and_holds_out_none_of_them(embedded, tmp_path, monkeypatch):
    data_dir, table, images = embedded
    monkeypatch.setattr(cache, "default_cache_dir", lambda: tmp_path / "cache")
    plain = training_data.load_training_data(data_dir, 64, "rgby", stage_dir=tmp_path / "plain", seed=0)
    validation = plain.validation_indices[:2]
    fresh = hpav18.write_hpav18(tmp_path / "v18", 5, image_size=64, seed=9)
    fresh_table = pd.read_csv(fresh / hpav18.LABELS_CSV, dtype=str)
    fresh_images = [
        np.stack(
            [
                cv2.imread(str(fresh / "images" / downloader.server_path(image_id, color))).max(axis=2)
                for color in dataset.COLORS
            ],
            axis=2,
        )
        for image_id in fresh_table["Id"]
    ]
    extra_images = [planted_copy(images[index]) for index in validation] + fresh_images
    extra_ids = ["copy_1_A1_1", "copy_2_A1_1"] + fresh_table["Id"].tolist()
    write_external_folder(tmp_path / "external", extra_images, extra_ids, ["0", "0"] + fresh_table["Target"].tolist())

    data = training_data.add_external(
        training_data.load_training_data(data_dir, 64, "rgby", stage_dir=tmp_path / "stage", seed=0),
        str(tmp_path / "external"),
        image_size=64,
        channels="rgby",
    )
    assert (data.external_images, data.external_dropped) == (5, 2)
    assert len(data.images) == len(images) + 5 and data.is_validation[len(images) :].sum() == 0
    np.testing.assert_array_equal(data.is_validation[: len(images)], plain.is_validation)
    split = pd.read_csv(tmp_path / "stage" / stages.SPLIT_FILE)
    assert not set(split["Id"]) & set(extra_ids) and len(split) == len(table)
    first_kept = cv2.imread(str(tmp_path / "external" / "train" / f"{extra_ids[2]}_red.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(data.images[len(images)][:, :, 0], first_kept)  # the copies were the ones dropped
    assert data.table["Id"].tolist()[len(images) :] == extra_ids[2:]
    scores = evaluation.evaluate_validation(
        np.full((len(data.validation_indices), 28), 0.3), data, stage_dir=tmp_path / "stage"
    )
    assert scores["external_images"] == 5 and scores["external_dropped"] == 2


def test_stacked_rows_live_on_disk_and_are_built_once(tmp_path):
    first = np.arange(2 * 4 * 4 * 2, dtype=np.uint8).reshape(2, 4, 4, 2)
    second = np.full((3, 4, 4, 2), 9, dtype=np.uint8)
    combined = cache.stacked([(first, None), (second, [0, 2])], cache_dir=tmp_path)
    assert isinstance(combined, np.memmap) and combined.shape == (4, 4, 4, 2)
    np.testing.assert_array_equal(combined, np.concatenate([first, second[[0, 2]]]))
    (path,) = tmp_path.glob("stacked-*.u8")
    stamp = path.stat().st_mtime_ns
    cache.stacked([(first, None), (second, [0, 2])], cache_dir=tmp_path)
    assert path.stat().st_mtime_ns == stamp and len(list(tmp_path.glob("stacked-*.u8"))) == 1
    with pytest.raises(errors.InputError, match="one sample shape"):
        cache.stacked([(first, None), (second[:, :2], None)], cache_dir=tmp_path)


def test_every_real_hpav18_id_reads_and_has_its_server_address():
    """The real external label file: all 74,606 rows parse, and every Id maps to the v18 address pattern."""
    table, problems, _ = dataset.label_files.read_label_file(REPO / "tests" / "data" / "external_hpav18.csv")
    assert problems == [] and len(table) == 74_606
    urls = {downloader.image_url(downloader.V18_URL, image_id, "red") for image_id in table["Id"]}
    assert len(urls) == 74_606 and all(url.count("/") == 5 and url.endswith("_red.jpg") for url in urls)
