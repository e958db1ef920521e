"""Throughput and latency of `facessl serve` under 8 concurrent clients for 30 seconds.

Starts the real server (`python -m facessl serve MODEL`) on a free 127.0.0.1 port with a
62-person model enrolled from lfw62-v1 (5 photos each), then 8 client threads post LFW
test photos (250x250 JPEGs) to POST /predict back to back for 30 s, and stops everything.
Clients and server share this machine's cores, so the figures include the clients' cost.

    python benchmarks/serve_load.py [--clients 8] [--seconds 30] [--workdir /tmp/facessl-bench]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
from lfw62_photos import write_photos

from facessl.recognition.enroll import enroll


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not answer {url}/health within {timeout} s")


def model_62(workdir: Path, data: str | None = None) -> tuple[Path, list[Path]]:
    """(the 62-person model, enrolled once from 5 photos each; the test photo files)."""
    people, tests = write_photos(workdir, data=data)
    model = workdir / "model-serve"
    if not (model / "bundle.json").is_file():
        enroll(people, model)
    return model, tests


@contextlib.contextmanager
def serving(model: Path):
    """`python -m facessl serve MODEL` on a free port until the block ends; yields
    (its URL, the process)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "facessl", "serve", str(model),
                               "--port", str(port)], stdout=subprocess.DEVNULL)
    try:
        _wait_until_up(url, server)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=10)


def _client(url: str, photos: list[tuple[str, bytes]], offset: int, stop_at: float,
            latencies: list[float], failures: list[int]) -> None:
    with httpx.Client(timeout=30) as client:
        i = offset
        while time.monotonic() < stop_at:
            name, data = photos[i % len(photos)]
            started = time.perf_counter()
            response = client.post(f"{url}/predict", files={"file": (name, data, "image/jpeg")})
            elapsed = time.perf_counter() - started
            if response.status_code == 200:
                latencies.append(elapsed)
            else:
                failures.append(response.status_code)
            i += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facessl-bench"))
    parser.add_argument("--data", help="LFW archive or folder (default: the usual search)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model, tests = model_62(args.workdir, args.data)
    photos = [(p.name, p.read_bytes()) for p in tests]
    with serving(model) as (url, _):
        for name, data in photos[:5]:  # warm-up
            httpx.post(f"{url}/predict", files={"file": (name, data, "image/jpeg")}, timeout=30)
        latencies: list[float] = []
        failures: list[int] = []
        stop_at = time.monotonic() + args.seconds
        started = time.perf_counter()
        threads = [threading.Thread(target=_client, args=(url, photos, 60 * c, stop_at,
                                                          latencies, failures))
                   for c in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    ms = 1000 * np.asarray(latencies)
    print(f"{args.clients} clients, {elapsed:.1f} s, {len(latencies)} answered 200, "
          f"{len(failures)} failed {sorted(set(failures))}")
    print("| clients | throughput photos/s | median ms | p95 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {args.clients} | {len(latencies) / elapsed:.1f} | {np.median(ms):.0f} | "
          f"{np.percentile(ms, 95):.0f} | {np.percentile(ms, 99):.0f} |")


if __name__ == "__main__":
    main()
