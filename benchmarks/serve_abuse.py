"""`facessl serve` under mixed good and bad traffic: does it keep answering, and right?

Starts the real server on a free 127.0.0.1 port with the 62-person model of
serve_load.py, then for `--seconds` runs `--clients` threads that each cycle through: a
good LFW test photo (its answer's name is checked against the person), a text file named
.jpg, an empty file, a truncated JPEG, a CMYK JPEG, a PNG header alone claiming 100,000 x
100,000 pixels, an 11 MB body (over the cap), an upload without Content-Length (chunked),
and a slow upload (its bytes trickled over 2 s); with `--big`, also 36-megapixel photos (6000
x 6000: good test photos scaled up, as JPEG and as PNG), whose names must be the names of
the photos they were made from. Meanwhile one thread polls GET /health
every 0.2 s, and another names a queued unknown face as a new person and, 5 s later,
removes that person again (the model changes under load both ways). Reported: answers
per kind and status, 5xx count, /health latency, the server's resident memory before,
every ~10 s during and after the load and its peak (VmHWM), and how many good photos got
another top-1 name during the load than the same photo got before it. The loop stops by
itself.

    python benchmarks/serve_abuse.py [--clients 16] [--seconds 60] [--big]
"""

from __future__ import annotations

import argparse
import io
import shutil
import struct
import threading
import time
import warnings
import zlib
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from serve_load import model_62, serving


def _bad_uploads(good: bytes) -> dict[str, bytes]:
    cmyk = io.BytesIO()
    Image.open(io.BytesIO(good)).convert("CMYK").save(cmyk, "JPEG")
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    bomb = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))
    return {"text named .jpg": b"not a photo\n", "empty": b"", "truncated JPEG": good[:2000],
            "CMYK JPEG": cmyk.getvalue(), "PNG header alone, 100k x 100k": bomb,
            "11 MB body": b"\xff\xd8\xff" + bytes(11 * 1024 * 1024)}


def _big_photos(goods: list[tuple[str, bytes]], workdir: Path) -> dict[str, tuple[int, bytes]]:
    """Two good photos scaled up to 6000 x 6000 (36 MP), as JPEG and as PNG (both under the
    10 MB cap), kept in `workdir`: kind -> (the good photo it was made from, its bytes)."""
    made = {}
    for index, (kind, fmt, options) in enumerate([("36 MP JPEG", "JPEG", {"quality": 90}),
                                                  ("36 MP PNG", "PNG", {"compress_level": 9})]):
        file = workdir / f"big-{index}.{fmt.lower()}"
        if not file.is_file():
            photo = Image.open(io.BytesIO(goods[index][1])).convert("RGB")
            photo.resize((6000, 6000), Image.Resampling.BILINEAR).save(file, fmt, **options)
        made[kind] = (index, file.read_bytes())
    return made


def _slowly(data: bytes, seconds: float):
    for i in range(10):
        time.sleep(seconds / 10)
        yield data[i * len(data) // 10:(i + 1) * len(data) // 10]


def _client(url, goods, bads, bigs, offset, stop_at, tally, named, big_named):
    kinds = ["good"] * 4 + list(bads) + list(bigs) + ["no Content-Length", "slow upload"]
    with httpx.Client(timeout=60) as client:
        i = offset
        while time.monotonic() < stop_at:
            kind = kinds[i % len(kinds)]
            data = goods[i % len(goods)][1]
            try:
                if kind in bigs:
                    answer = client.post(f"{url}/predict",
                                         files={"file": ("big", bigs[kind][1])})
                    if answer.status_code == 200:
                        big_named.append((bigs[kind][0], _top1(answer)))
                elif kind == "good" or kind in bads:
                    body = data if kind == "good" else bads[kind]
                    answer = client.post(f"{url}/predict", files={"file": ("p.jpg", body)})
                elif kind == "no Content-Length":
                    answer = client.post(f"{url}/predict", content=iter([data]),
                                         headers={"content-type": "image/jpeg"})
                else:
                    boundary = b"slowslowslow"
                    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
                            b'filename="p.jpg"\r\n\r\n' + data + b"\r\n--" + boundary + b"--\r\n")
                    answer = client.post(f"{url}/predict", content=_slowly(body, 2.0), headers={
                        "content-type": f"multipart/form-data; boundary={boundary.decode()}",
                        "content-length": str(len(body))})
                tally[(kind, answer.status_code)] += 1
                if kind == "good" and answer.status_code == 200:
                    named.append((i % len(goods), _top1(answer)))
            except httpx.HTTPError as exc:
                tally[(kind, type(exc).__name__)] += 1
            i += 1


def _top1(answer) -> str | None:
    faces = answer.json()["faces"]
    return faces[0]["nearest"] if faces else None


def _health(url, stop_at, latencies, pid, rss):
    """GET /health every 0.2 s; the server's resident memory every 10 s."""
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            client.get(f"{url}/health")
            latencies.append(time.perf_counter() - started)
            if len(latencies) % 50 == 0:
                rss.append(_rss_mb(pid))
            time.sleep(0.2)


def _newcomers(url, stop_at, added, removed):
    """Every 5 s, in turn: name a queued unknown face as a new person, or remove the
    person added last (the model changes under load both ways)."""
    with httpx.Client(timeout=60) as client:
        tick = 0
        while time.monotonic() < stop_at - 5:
            time.sleep(5)
            tick += 1
            if tick % 2:
                queued = client.get(f"{url}/unknown").json()["faces"]
                if queued:
                    name = f"Newcomer_{len(added) + 1}"
                    answer = client.post(f"{url}/unknown/{queued[0]['id']}/name",
                                         json={"name": name})
                    added.append((name, answer.status_code))
            elif added and added[-1][1] == 200:
                removed.append(client.delete(f"{url}/people/{added[-1][0]}").status_code)


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    """The process's resident memory now (VmRSS), or its peak so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facessl-bench"))
    parser.add_argument("--big", action="store_true", help="mix in 36-megapixel photos")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model, tests = model_62(args.workdir)
    changing = args.workdir / "model-abuse"
    shutil.rmtree(changing, ignore_errors=True)
    shutil.copytree(model, changing)
    goods = [(p.name.rsplit("_", 1)[0], p.read_bytes()) for p in tests]
    bads = _bad_uploads(goods[0][1])
    bigs = _big_photos(goods, args.workdir) if args.big else {}
    with serving(changing) as (url, server):
        before = [_top1(httpx.post(f"{url}/predict", files={"file": ("p.jpg", data)},
                                   timeout=60)) for _, data in goods]  # before any load
        rss_before = _rss_mb(server.pid)
        tally, named, health, added, removed, rss = Counter(), [], [], [], [], []
        big_named = []
        stop_at = time.monotonic() + args.seconds
        threads = [threading.Thread(target=_client, args=(url, goods, bads, bigs, 7 * c,
                                                          stop_at, tally, named, big_named))
                   for c in range(args.clients)]
        threads += [threading.Thread(target=_health, args=(url, stop_at, health, server.pid,
                                                            rss)),
                    threading.Thread(target=_newcomers, args=(url, stop_at, added, removed))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rss_after, peak = _rss_mb(server.pid), _rss_mb(server.pid, "VmHWM")
    print(f"{args.clients} clients for {args.seconds:.0f} s, {sum(tally.values())} requests; "
          "answers by kind and status:")
    print("| upload | status | answers |")
    print("| --- | --- | --- |")
    for (kind, status), count in sorted(tally.items(), key=str):
        print(f"| {kind} | {status} | {count} |")
    errors = sum(c for (_, s), c in tally.items() if isinstance(s, int) and s >= 500)
    ms = 1000 * np.asarray(health)
    print(f"5xx answers: {errors}; /health: {len(ms)} polls, median {np.median(ms):.0f} ms, "
          f"p99 {np.percentile(ms, 99):.0f} ms, max {ms.max():.0f} ms")
    print(f"server RSS: {rss_before:.0f} MB before the load, {rss_after:.0f} MB after, peak "
          f"{peak:.0f} MB; every ~10 s during it: {', '.join(f'{m:.0f}' for m in rss)} MB")
    if bigs:
        same = sum(name == before[index] for index, name in big_named)
        print(f"36-megapixel photos: {same} of {len(big_named)} answers name the same person "
              "as the photo they were made from")
    right = np.mean([name == person for name, (person, _) in zip(before, goods)])
    changed = sum(name != before[i] for i, name in named)
    during = np.mean([name == goods[i][0] for i, name in named])
    same = np.mean([before[i] == goods[i][0] for i, _ in named])
    print(f"good photos: top-1 right for {100 * right:.1f}% of all {len(goods)} before the "
          f"load; during it {100 * during:.1f}% of {len(named)} answers (the same photos before: "
          f"{100 * same:.1f}%), {changed} naming another person than before; under load, "
          f"people added: {[s for _, s in added].count(200)} of {len(added)}, removed: "
          f"{removed.count(200)} of {len(removed)}")


if __name__ == "__main__":
    main()
