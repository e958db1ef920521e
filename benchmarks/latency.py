"""How long the product takes: predict per photo, enroll 62 people x 5 photos, add a person.

Predict is the whole path of `facessl predict`: read the file, decode, face detection (the
model's detector: MTCNN + alignment by default), the network and the prototypes, on 250x250
LFW test photos of lfw62-v1. "single" times one photo at a time (median and p95 over 200 photos);
"batch of 100" times 100 photos in one call, divided by 100 (median and p95 over 10 runs).
Detection and classification are also timed apart (medians). Enroll and add-person time the
functions behind `facessl enroll` and `facessl add-person`, bundle writing included; the
command itself adds Python's and torch's start-up (printed too).

    python benchmarks/latency.py [--threads 1] [--workdir /tmp/facessl-bench]

Anchor (issue 4): face_recognition (dlib) takes a median 105 ms per 250x250 photo on one
core here (68 ms HOG detection, 35 ms the embedding).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from lfw62_photos import write_photos

from facessl.data.faces import faces_in_photo
from facessl.data.photos import load_photo
from facessl.recognition.classifier import FaceClassifier
from facessl.recognition.enroll import add_person, enroll, remove_person
from facessl.recognition.predict import predict_files


def _ms(values) -> str:
    values = 1000 * np.asarray(values)
    return f"{np.median(values):.1f} | {np.percentile(values, 95):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and OpenCV (default: all cores)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facessl-bench"))
    parser.add_argument("--data", help="LFW archive or folder (default: the usual search)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    warnings.simplefilter("ignore")
    people, tests = write_photos(args.workdir, data=args.data)
    model = args.workdir / "model"

    started = time.perf_counter()
    clf, _ = enroll(people, model)
    enroll_seconds = time.perf_counter() - started
    person = clf.people[-1]
    started = time.perf_counter()
    remove_person(model, person)
    remove_seconds = time.perf_counter() - started
    started = time.perf_counter()
    add_person(model, person, people / person)
    add_seconds = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "facessl", "enroll", str(people), "--out",
                    str(args.workdir / "model-cli"), "--quiet"], check=True, capture_output=True)
    cli_seconds = time.perf_counter() - started
    shutil.rmtree(args.workdir / "model-cli")

    clf = FaceClassifier.load(model)
    list(predict_files(clf, tests[:10]))  # warm-up: first calls set up oneDNN kernels
    single = []
    for file in tests[:200]:
        started = time.perf_counter()
        list(predict_files(clf, [file]))
        single.append(time.perf_counter() - started)
    batch = []
    for run in range(10):
        files = tests[100 * (run % 4):100 * (run % 4) + 100]
        started = time.perf_counter()
        list(predict_files(clf, files))
        batch.append((time.perf_counter() - started) / len(files))
    detect, classify = [], []
    for file in tests[:100]:
        photo = load_photo(file)
        started = time.perf_counter()
        found = faces_in_photo(photo, clf.preprocessing, detector=clf.detector)
        detect.append(time.perf_counter() - started)
        if found:
            started = time.perf_counter()
            clf.predict(np.stack([crop for _, crop in found]))
            classify.append(time.perf_counter() - started)

    print(f"threads: torch {torch.get_num_threads()}, OpenCV {cv2.getNumThreads()}; "
          f"{len(clf.people)} people enrolled; faces found by {clf.detector}")
    print("| predict, per 250x250 photo | median ms | p95 ms |")
    print("| --- | --- | --- |")
    print(f"| single photo (read + detect + classify) | {_ms(single)} |")
    print(f"| batch of 100, per photo | {_ms(batch)} |")
    print(f"| of which detection (one photo) | {_ms(detect)} |")
    print(f"| of which classification (its faces) | {_ms(classify)} |")
    print()
    print("| operation | seconds |")
    print("| --- | --- |")
    print(f"| enroll 62 people x 5 photos (function) | {enroll_seconds:.1f} |")
    print(f"| `facessl enroll` of the same, whole command | {cli_seconds:.1f} |")
    print(f"| add-person (5 photos, bundle rewritten) | {add_seconds:.2f} |")
    print(f"| remove-person (bundle rewritten) | {remove_seconds:.2f} |")


if __name__ == "__main__":
    main()
