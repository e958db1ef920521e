"""Threads per stage: each stage of the work timed with 1 and 2 torch threads and OpenMP's
two wait policies, on a quiet machine and beside one other CPU-bound process.

Small convolutions on many threads spin against whatever else runs (issue 35: MTCNN took
398.6 ms a photo with torch's default 2 threads on 2 busy cores, 5.9 ms with 1). The
choice in `facessl.threads` must be within 10% of the best on a quiet machine and never
more than 2.5x slower than quiet when the machine is shared. Each setting runs in a process
of its own (OpenMP reads its wait policy once, at start); the busy neighbour is a Python
loop that keeps one core at 100%.

    python benchmarks/threads.py [--stages detect describe whiten train-tinyvgg ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

STAGES = ("detect", "describe", "whiten", "train-tinyvgg", "train-lite0", "train-lite0-bf16")
POLICIES = ("active", "passive")  # OpenMP's default spin-then-sleep, and OMP_WAIT_POLICY=PASSIVE
BUSY = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"  # ends with us


def _work(stage: str, shipped: bool):
    """(set-up done, a function doing one measured unit of `stage`'s work); `shipped`: as
    facessl runs it (detection: several photos at once, `threads.photo_workers`)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    if stage == "detect":  # 90 LFW photos through the photo loop: decode, MTCNN, alignment
        from facessl.config import Preprocessing
        from facessl.data import lfw
        from facessl.data.photos import faces_of_photos
        from facessl.threads import photo_workers

        photos = []
        for name, data in lfw.locate(None, download=False).iter_images():
            photos.append((name, data))
            if len(photos) == 90:
                break
        workers = photo_workers() if shipped else 1
        return lambda: list(faces_of_photos(photos, Preprocessing(size=96), "mtcnn",
                                            workers=workers))
    if stage == "describe":  # 256 face crops through the default backbone and both views
        from facessl.config import DEFAULT_BACKBONE
        from facessl.space.face_model import FaceModel

        model = FaceModel.load(DEFAULT_BACKBONE)
        crops = rng.integers(0, 256, (256, 96, 96, 3), dtype=np.uint8)
        return lambda: [model.features(crops, view) for view in ("face", "mirror")]
    if stage == "whiten":  # a face space's covariance and eigenvectors, 4,000 x 2,000 rows
        from facessl.space.whitening import Whitening

        rows = rng.standard_normal((4000, 2000)).astype(np.float32)
        return lambda: Whitening.fit(rows, 1.0, 256)
    if stage.startswith("train"):  # the main experiment's fine-tuning steps, batch 16
        from facessl.models import create_model
        from facessl.threads import threads_for

        if stage == "train-tinyvgg":  # TinyVGG at 32 px (the ssl and scratch arms), 50 steps
            net, side, steps = create_model("tinyvgg", 10, 32, 3), 32, 50
        else:  # EfficientNet-Lite0 at 80 px, its first 6 blocks frozen (the transfer arm);
            # -bf16: under bfloat16 autocast, for a CPU with AVX512-BF16
            net, side, steps = create_model("efficientnet_lite0", 10, 80,
                                            frozen_blocks=6), 80, 10
        optimiser = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], 0.01)
        x, y = torch.randn(16, 3, side, side), torch.randint(0, 10, (16,))

        autocast = torch.autocast("cpu", torch.bfloat16, enabled=stage.endswith("bf16"))

        def train_steps():  # as `train.run_training` runs an epoch
            with threads_for("train"):
                for _ in range(steps):
                    optimiser.zero_grad()
                    with autocast:
                        loss = torch.nn.functional.cross_entropy(net(x), y)
                    loss.backward()
                    optimiser.step()
        return train_steps
    raise SystemExit(f"unknown stage {stage}")


def _measure(stage: str, threads: int, repeats: int) -> float:
    """Seconds of the best of `repeats` runs of one unit of work (after one warm-up);
    `threads` 0: as shipped (`facessl.threads` chooses)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    work = _work(stage, shipped=not threads)
    work()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def _run(stage: str, threads: int, policy: str, busy: bool, repeats: int) -> float:
    """One setting in a process of its own; OMP_NUM_THREADS set (the user's choice, which
    `facessl.threads` keeps) for a fixed count, left out for the shipped one."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    if policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        done = subprocess.run([sys.executable, __file__, "--measure", stage, str(threads),
                               "--repeats", str(repeats)], env=env, capture_output=True,
                              text=True, check=True)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", nargs=2, metavar=("STAGE", "THREADS"), help="internal")
    args = parser.parse_args()
    if args.measure:
        print(f"{_measure(args.measure[0], int(args.measure[1]), args.repeats):.4f}")
        return
    from facessl.threads import STAGE_THREADS

    print(f"cores: {os.cpu_count()}; shipped: {STAGE_THREADS}")
    print("| stage | threads | OpenMP wait | quiet (s) | beside a busy process (s) "
          "| busy / quiet |")
    print("| --- | --- | --- | --- | --- | --- |")
    for stage in args.stages:
        for threads in [*args.threads, 0]:
            for policy in POLICIES if threads else ("active",):  # OpenMP's own, kept
                quiet = _run(stage, threads, policy, False, args.repeats)
                busy = _run(stage, threads, policy, True, args.repeats)
                shown = threads or f"shipped ({STAGE_THREADS[stage.split('-')[0]] or 'free cores'})"
                print(f"| {stage} | {shown} | {policy} | {quiet:.3f} | {busy:.3f} | "
                      f"{busy / quiet:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
