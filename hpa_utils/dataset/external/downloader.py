"""The HPAv18 downloader: each Id's four colour JPEGs from the image server, as 8-bit channel PNGs in the Kaggle layout.

``python -m hpa_utils external download --labels external_hpav18.csv --out DIR``. An image is done when its PNG
exists (written atomically, so a killed download never leaves a half file that counts); a second run fetches only
what is missing. DIR/train.csv lists the Ids whose four channels are all there; DIR/download_failures.csv what
failed last time and why.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
from tqdm import tqdm

from hpa_utils import errors
from hpa_utils.dataset.external.addresses import server_path
from hpa_utils.dataset.images import COLORS, ImageError, decode_channel
from hpa_utils.dataset.label_files import TRAIN_CSV, DatasetError, read_label_file
from hpa_utils.system import atomic_files

V18_URL = "http://v18.proteinatlas.org/images/"
FAILURES_CSV = "download_failures.csv"
PNG_OPTIONS = (cv2.IMWRITE_PNG_COMPRESSION, 1)
PERMANENT_HTTP = {400, 401, 403, 404, 410}  # asking again will not help


class FetchError(errors.HpaError):
    """One image could not be fetched or used; ``reason`` says why in a few words, ``retry`` whether to ask again."""

    def __init__(self, reason: str, retry: bool):
        super().__init__(reason)
        self.reason, self.retry = reason, retry


@dataclasses.dataclass
class Settings:
    base_url: str = V18_URL
    size: int = 512
    retries: int = 3
    backoff: float = 1.0  # seconds before the first retry; doubled after each
    timeout: float = 60.0


def image_url(base_url: str, image_id: str, color: str) -> str:
    """The address of one colour of ``image_id``: base URL + <plate>/<rest of the Id>_<colour>.jpg."""
    return base_url.rstrip("/") + "/" + server_path(image_id, color)


def channel_png(folder: Path, image_id: str, color: str) -> Path:
    return folder / "train" / f"{image_id}_{color}.png"


def _get(url: str, timeout: float) -> bytes:
    """The body of ``url``; FetchError naming the HTTP status or the network error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            data = response.read()
    except urllib.error.HTTPError as error:
        raise FetchError(f"HTTP {error.code}", retry=error.code not in PERMANENT_HTTP) from error
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        raise FetchError(f"network: {getattr(error, 'reason', error)}", retry=True) from error
    if expected is not None and expected.isdigit() and len(data) != int(expected):
        raise FetchError(f"truncated: {len(data)} of {expected} bytes", retry=True)
    return data


def fetch_channel(url: str, target: Path, settings: Settings) -> None:
    """Fetch one colour JPEG, convert it to the 8-bit channel at ``settings.size`` and write the PNG atomically.

    Retries (with back-off) what may pass: server errors, network errors, truncated bodies. Raises FetchError.
    """
    for attempt in range(settings.retries + 1):
        try:
            data = _get(url, settings.timeout)
            try:
                channel = decode_channel(data, url, settings.size)
            except ImageError as error:
                truncated = "truncated" in str(error)
                raise FetchError("truncated image" if truncated else "not an image", retry=truncated) from error
            ok, encoded = cv2.imencode(".png", channel, PNG_OPTIONS)
            if not ok:
                raise FetchError("PNG encoding failed", retry=False)
            with atomic_files.atomic_write(target) as temporary:
                temporary.write_bytes(encoded.tobytes())
            return
        except FetchError as error:
            if not error.retry or attempt == settings.retries:
                raise
            time.sleep(settings.backoff * 2**attempt)


def fetch_image(image_id: str, folder: Path, settings: Settings) -> tuple[str, list[tuple[str, str, str]]]:
    """Fetch the channels of one Id that are not there yet: ("kept" | "done" | "failed", [(colour, url, reason)])."""
    missing = [color for color in COLORS if not channel_png(folder, image_id, color).is_file()]
    failures = []
    for color in missing:
        url = image_url(settings.base_url, image_id, color)
        try:
            fetch_channel(url, channel_png(folder, image_id, color), settings)
        except FetchError as error:
            failures.append((color, url, error.reason))
    if failures:
        return "failed", failures
    return ("done" if missing else "kept"), []


def write_index(folder: Path, table, failures: dict) -> int:
    """train.csv of the Ids with all four channels (in the labels' order), download_failures.csv; the count."""
    complete = [
        (image_id, target)
        for image_id, target in zip(table["Id"], table["Target"])
        if all(channel_png(folder, image_id, color).is_file() for color in COLORS)
    ]
    with atomic_files.atomic_write(folder / TRAIN_CSV) as temporary:
        temporary.write_text("Id,Target\n" + "".join(f"{image_id},{target}\n" for image_id, target in complete))
    lines = [
        f"{image_id},{color},{url},{reason}\n" for image_id, rows in failures.items() for color, url, reason in rows
    ]
    with atomic_files.atomic_write(folder / FAILURES_CSV) as temporary:
        temporary.write_text("Id,colour,url,reason\n" + "".join(lines))
    return len(complete)


def download(
    labels_csv, out, *, settings: Settings | None = None, limit: int | None = None, workers: int = 8, progress=True
) -> dict:
    """Download (or continue downloading) the Ids of ``labels_csv`` into ``out`` from ``settings``' server (its
    image size, retries and back-off; default the HPA v18 server at 512 px); return the counts by outcome and the
    failure reasons: {"done", "kept", "failed", "complete", "reasons": {reason: images}}."""
    table, problems, _ = read_label_file(Path(labels_csv))
    if problems:
        raise DatasetError(problems)
    if limit is not None:
        table = table.iloc[: errors.integer("limit", limit, minimum=1)]
    workers = errors.integer("workers", workers, minimum=1)
    settings = settings or Settings()
    errors.integer("size", settings.size, minimum=8)
    folder = Path(out).expanduser()
    (folder / "train").mkdir(parents=True, exist_ok=True)
    counts, failures = {"done": 0, "kept": 0, "failed": 0}, {}
    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            jobs = {pool.submit(fetch_image, image_id, folder, settings): image_id for image_id in table["Id"]}
            bar = tqdm(concurrent.futures.as_completed(jobs), total=len(jobs), unit="image", disable=not progress)
            for job in bar:
                outcome, rows = job.result()
                counts[outcome] += 1
                if rows:
                    failures[jobs[job]] = rows
                bar.set_postfix(failed=counts["failed"], refresh=False)
    finally:
        counts["complete"] = write_index(folder, table, failures)
    reasons = {}
    for rows in failures.values():
        for reason in {reason for _, _, reason in rows}:
            reasons[reason] = reasons.get(reason, 0) + 1
    return {**counts, "reasons": reasons}


def describe(summary: dict, out) -> str:
    """The closing lines of a download: what was fetched, kept and failed, and why."""
    lines = [
        f"{summary['done']} images fetched, {summary['kept']} already there, {summary['failed']} failed; "
        f"{summary['complete']} complete images listed in {Path(out) / TRAIN_CSV}"
    ]
    for reason, count in sorted(summary["reasons"].items(), key=lambda item: -item[1]):
        lines.append(f"  {count} image{'s' if count != 1 else ''}: {reason}")
    if summary["failed"]:
        lines.append(f"  each failure: {Path(out) / FAILURES_CSV}; run the same command again to retry them")
    return "\n".join(lines)


def main(arguments) -> int:
    """Entry point of `python -m hpa_utils external download`."""
    settings = Settings(arguments.base_url or V18_URL, size=arguments.size, retries=arguments.retries)
    summary = download(
        arguments.labels, arguments.out, settings=settings, limit=arguments.limit, workers=arguments.workers
    )
    print(describe(summary, arguments.out))
    return 0 if summary["failed"] == 0 else 1
