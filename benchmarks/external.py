"""The HPAv18 download, measured against a local server: seconds and bytes per image, extrapolated to 74,606 Ids.

``python -m benchmarks.external [--ids 24] [--source-size 2048] [--size 512] [--workers 8]``. The server serves
``synth --hpav18`` output at the real images' size (2048 px colour JPEGs) on 127.0.0.1, so the numbers are this
machine's decoding, resizing and PNG writing with no network in the way: the real server adds its own latency
and bandwidth on top. Prints measured numbers and says which are extrapolated.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import tempfile
import threading
import time
from pathlib import Path

from hpa_utils.dataset import external
from hpa_utils.dataset.synthetic import hpav18

HPAV18_IDS = 74_606  # rows of ../shared/hpa/external_hpav18.csv


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *arguments):
        pass


def measure(ids: int, source_size: int, size: int, workers: int) -> dict:
    """Generate, serve and download ``ids`` Ids once; the seconds and bytes it took."""
    with tempfile.TemporaryDirectory() as folder:
        source = hpav18.write_hpav18(Path(folder) / "v18", ids, image_size=source_size, seed=0)
        served = source / hpav18.IMAGES_FOLDER
        handler = functools.partial(_Quiet, directory=str(served))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            started = time.perf_counter()
            summary = external.download(
                source / hpav18.LABELS_CSV,
                Path(folder) / "out",
                settings=external.Settings(f"http://127.0.0.1:{server.server_address[1]}/", size=size),
                workers=workers,
                progress=False,
            )
            seconds = time.perf_counter() - started
        finally:
            server.shutdown()
        fetched = sum(path.stat().st_size for path in served.rglob("*.jpg"))
        written = sum(path.stat().st_size for path in (Path(folder) / "out" / "train").glob("*.png"))
    if summary["failed"]:
        raise RuntimeError(f"the local download failed: {summary}")
    return {"seconds": seconds, "fetched_bytes": fetched, "written_bytes": written}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ids", type=int, default=24)
    parser.add_argument("--source-size", type=int, default=2048)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=8)
    arguments = parser.parse_args(argv)
    result = measure(arguments.ids, arguments.source_size, arguments.size, arguments.workers)
    per_id = result["seconds"] / arguments.ids
    print(
        f"measured: {arguments.ids} Ids ({4 * arguments.ids} colour JPEGs of {arguments.source_size} px) from a "
        f"local server, {arguments.workers} workers, written at {arguments.size} px:"
    )
    print(f"  {result['seconds']:.1f} s, {per_id:.3f} s per Id")
    print(f"  fetched {result['fetched_bytes'] / arguments.ids / 1e6:.2f} MB per Id (synthetic JPEGs)")
    print(f"  written {result['written_bytes'] / arguments.ids / 1e6:.3f} MB per Id (four 8-bit PNGs)")
    print(f"extrapolated to {HPAV18_IDS:,} Ids (not measured):")
    print(f"  {per_id * HPAV18_IDS / 3600:.1f} hours of this machine's conversion work, before any network time")
    print(f"  {result['written_bytes'] / arguments.ids * HPAV18_IDS / 1e9:.1f} GB of PNGs on disk")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
