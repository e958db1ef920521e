"""Does `facessl pretrain`'s memory grow with its pool? Resident memory at 1x and 10x the pool.

Extracts lfw62-v1's images from the LFW archive into `--workdir`, then makes a second
dataset folder holding the same photos plus `--repeat - 1` more copies of every unlabelled
one (symbolic links under renamed person folders), with a manifest whose pool lists them
all: 9,199 and 91,990 faces. For each, in a fresh cache: decodes the image cache in its own
process (peak resident memory), then runs

    facessl pretrain --method rotation --backbone tinyvgg --epochs 1 --quiet ...

for `--seconds` or until its one epoch ends (loading the pool and training on it; not
the face space fitted after the training) while sampling the process's
resident memory every 0.2 s: all of it (VmRSS) and its anonymous part (RssAnon: what the
process itself holds; the rest is pages of the memory-mapped cache, which the kernel drops
under pressure). Stops the run at the end of the window.

    python benchmarks/pool_memory.py [--repeat 10] [--seconds 90] [--workdir /tmp/poolmem]

To compare with another checkout, run it with PYTHONPATH=<checkout>/src.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ARCHIVE = SHARED / "data" / "lfw-deepfunneled.tgz"
MANIFEST = SHARED / "benchmarks" / "lfw62-v1.json"


def extract(manifest: dict, folder: Path) -> None:
    """The manifest's photos as folder/<Person>/<file>, once."""
    if (folder / ".done").is_file():
        return
    wanted = {p for roles in manifest["community"].values() for r in roles.values() for p in r}
    wanted |= set(manifest["unlabelled"]) | set(manifest["unknown"])
    with tarfile.open(ARCHIVE, "r:gz") as tar:
        for member in tar:
            rel = "/".join(Path(member.name).parts[-2:])
            if member.isfile() and rel in wanted:
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_bytes(tar.extractfile(member).read())
    (folder / ".done").write_text("")


def repeated(manifest: dict, base: Path, folder: Path, times: int) -> dict:
    """A dataset folder of base's photos plus times - 1 linked copies of each pool photo
    (person folders renamed `<Person>~r<k>`); its manifest pools every copy."""
    pool = list(manifest["unlabelled"])
    links = {p.relative_to(base).as_posix(): p for p in base.glob("*/*")}
    for k in range(1, times):
        for rel in manifest["unlabelled"]:
            person, name = rel.split("/")
            links[f"{person}~r{k}/{name}"] = base / rel
            pool.append(f"{person}~r{k}/{name}")
    for rel, target in links.items():
        if not (folder / rel).exists():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).symlink_to(target.resolve())
    return {**manifest, "name": f"{manifest['name']}-x{times}", "unlabelled": pool}


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of a process in kB; (0, 0) once it is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                      .splitlines() if ":" in line)
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    return (int(fields.get("VmRSS", "0 kB").split()[0]),
            int(fields.get("RssAnon", "0 kB").split()[0]))


def build_cache(data: Path, env: dict) -> float:
    """Decode the dataset's image cache in a child process; its peak resident memory, MB."""
    code = ("import resource; from facessl.config import Preprocessing; "
            "from facessl.data import cache, lfw; "
            f"cache.load_or_build(lfw.locate({str(data)!r}), Preprocessing(size=32), quiet=True);"
            " print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                          capture_output=True, text=True)
    return int(done.stdout.split()[-1]) / 1024  # ru_maxrss is in kB


def pretrain_window(data: Path, split: Path, out: Path, seconds: float, env: dict) -> dict:
    """Run pretrain for `seconds`, sampling its memory; peaks and the last sample, MB."""
    command = [sys.executable, "-m", "facessl", "pretrain", "--method", "rotation",
               "--backbone", "tinyvgg", "--epochs", "1", "--quiet", "--data", str(data),
               "--split", str(split), "--out", str(out)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    samples, started = [], time.monotonic()
    while (time.monotonic() - started < seconds and process.poll() is None
           and not (out / "log.jsonl").is_file()):  # the epoch ended: training is over
        samples.append(memory_kb(process.pid))
        time.sleep(0.2)
    finished = process.poll() is not None or (out / "log.jsonl").is_file()
    process.kill()
    _, err = process.communicate()
    if finished and process.returncode != 0:
        raise SystemExit(f"pretrain failed:\n{err.decode()[-2000:]}")
    samples = [s for s in samples if s[0]]
    return {"peak_rss": max(s[0] for s in samples) / 1024,
            "peak_anon": max(s[1] for s in samples) / 1024,
            "last_rss": samples[-1][0] / 1024, "last_anon": samples[-1][1] / 1024,
            "finished": finished, "seconds": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/poolmem"))
    args = parser.parse_args()
    manifest = json.loads(MANIFEST.read_text())
    base = args.workdir / "lfw62"
    extract(manifest, base)
    big = repeated(manifest, base, args.workdir / f"lfw62-x{args.repeat}", args.repeat)
    rows = []
    for name, data, pool in (("1x", base, manifest), (f"{args.repeat}x",
                             args.workdir / f"lfw62-x{args.repeat}", big)):
        split = args.workdir / f"{pool['name']}.json"
        split.write_text(json.dumps(pool))
        run = args.workdir / f"run-{name}"
        subprocess.run(["rm", "-rf", str(run)], check=True)
        env = {**os.environ, "FACESSL_CACHE": str(run / "cache"), "OMP_NUM_THREADS": "2"}
        cache_peak = build_cache(data, env)
        window = pretrain_window(data, split, run / "pretrain", args.seconds, env)
        rows.append((name, len(pool["unlabelled"]), cache_peak, window))
    print(f"\npretrain rotation/tinyvgg 32 px, loading and training, at most {args.seconds:.0f} s"
          " of each run (MB)\n")
    print("| pool | faces | cache build peak RSS | pretrain peak RSS | peak anonymous | "
          "RSS at the end | anonymous at the end |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, faces, cache_peak, w in rows:
        print(f"| {name} | {faces:,} | {cache_peak:,.0f} | {w['peak_rss']:,.0f} | "
              f"{w['peak_anon']:,.0f} | {w['last_rss']:,.0f} | {w['last_anon']:,.0f} |"
              + (f" (the epoch ended after {w['seconds']:.0f} s)" if w["finished"] else ""))


if __name__ == "__main__":
    main()
