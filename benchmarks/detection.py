"""Face detection, measured: recall, false boxes per photo and time, for each detector.

The photos are built from material facessl may use, with every face's place known:

- *scenes*: 640x480 crops of scikit-learn's two sample photos (a temple, a flower; no
  people), with 1 to 4 faces pasted in at random places and sizes (40 to 160 px). A face is
  the central 150 px of an LFW photo (the face and a little around it, cut with a soft
  edge), so no second LFW person comes along;
- *no-face photos*: 640x480 crops of the same sample photos with nothing pasted in;
- *LFW photos*: the deep-funneled 250x250 photos themselves; only the centred face is
  known, so they score recall only (their background people would count as false boxes).

A box finds a face when its centre lies within half the face's side of the face's centre
and its side is 0.5 to 2 times the face's (the detectors draw boxes differently: Haar's
are square, MTCNN's taller). A box that finds no face is a false box. Time: median per
640x480 photo on one thread, detection only.

    python benchmarks/detection.py [--scenes 200] [--lfw 400] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from sklearn.datasets import load_sample_images

from facessl.config import DETECTORS
from facessl.data import lfw
from facessl.data.cache import LFW_SIDE
from facessl.data.faces import detect_faces
from facessl.data.photos import load_photo

SIZE = (640, 480)
PATCH = 150  # px of the 250 px LFW frame pasted: the face (about 117 px) and some margin
FACE_IN_PATCH = 117.5 / PATCH  # the face's side as a share of the patch (faces.LFW_BOX_SIDE)
MIN_FACE, MAX_FACE = 40, 160


def backgrounds(rng: np.random.Generator, count: int) -> list[Image.Image]:
    """`count` random 640x480 crops (flipped at random) of scikit-learn's sample photos."""
    photos = [Image.fromarray(p) for p in load_sample_images().images]
    crops = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        scale = rng.uniform(1.0, 1.6) * max(SIZE[0] / photo.width, SIZE[1] / photo.height)
        big = photo.resize((int(photo.width * scale) + 1, int(photo.height * scale) + 1))
        x, y = rng.integers(big.width - SIZE[0] + 1), rng.integers(big.height - SIZE[1] + 1)
        crop = big.crop((x, y, x + SIZE[0], y + SIZE[1]))
        crops.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5
                     else crop)
    return crops


def compose(background: Image.Image, faces: list[Image.Image], rng: np.random.Generator
            ) -> tuple[Image.Image, list[tuple[float, float, float]]]:
    """The background with `faces` pasted in without overlap; (centre x, centre y, side)."""
    scene, placed = background.copy(), []  # (x, y, patch side) of each pasted patch
    mask = Image.new("L", (PATCH, PATCH), 0)
    ImageDraw.Draw(mask).ellipse((8, 4, PATCH - 8, PATCH - 4), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(6))
    for face in faces:
        for _ in range(50):  # a free place, or the face is left out
            patch = round(rng.uniform(MIN_FACE, MAX_FACE) / FACE_IN_PATCH)
            x, y = int(rng.integers(0, SIZE[0] - patch)), int(rng.integers(0, SIZE[1] - patch))
            if all(x + patch <= px or px + ps <= x or y + patch <= py or py + ps <= y
                   for px, py, ps in placed):
                scene.paste(face.resize((patch, patch)), (x, y), mask.resize((patch, patch)))
                placed.append((x, y, patch))
                break
    return scene, [(x + p / 2, y + p / 2, p * FACE_IN_PATCH) for x, y, p in placed]


def matches(boxes, faces: list[tuple[float, float, float]]) -> tuple[int, int]:
    """(faces found, false boxes): each face is claimed by at most one box."""
    free, found = list(faces), 0
    for box in boxes:
        bx, by, side = box.x + box.w / 2, box.y + box.h / 2, (box.w + box.h) / 2
        hit = next((f for f in free if np.hypot(bx - f[0], by - f[1]) < f[2] / 2
                    and 0.5 < side / f[2] < 2), None)
        if hit is not None:
            free.remove(hit)
            found += 1
    return found, len(boxes) - found


def lfw_material(count: int, seed: int) -> tuple[list[Image.Image], list[Image.Image]]:
    """(`count` whole LFW photos spread over the archive, their central patches)."""
    every = max(1, 13233 // count)
    photos = [load_photo(data, rel) for i, (rel, data) in enumerate(lfw.locate().iter_images())
              if i % every == seed % every][:count]
    margin = (LFW_SIDE - PATCH) // 2
    return photos, [p.crop((margin, margin, margin + PATCH, margin + PATCH)) for p in photos]


def score(detector: str, scenes, empty, photos) -> dict:
    """Recall, false boxes per photo and median ms per 640x480 photo for one detector."""
    found = total = false = 0
    seconds = []
    for scene, faces in scenes:
        started = time.perf_counter()
        boxes = detect_faces(scene, detector=detector)
        seconds.append(time.perf_counter() - started)
        hit, wrong = matches(boxes, faces)
        found, total, false = found + hit, total + len(faces), false + wrong
    empty_false = sum(len(detect_faces(photo, detector=detector)) for photo in empty)
    centre = [(LFW_SIDE / 2, LFW_SIDE / 2, 117.5)]
    lfw_found = sum(matches(detect_faces(p, detector=detector), centre)[0] for p in photos)
    return {"recall": found / total, "false_per_scene": false / len(scenes),
            "false_per_empty": empty_false / len(empty), "lfw_recall": lfw_found / len(photos),
            "ms": 1000 * statistics.median(seconds), "faces": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--lfw", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    photos, patches = lfw_material(args.lfw, args.seed)
    scenes = [compose(bg, [patches[i] for i in rng.choice(len(patches), rng.integers(1, 5))],
                      rng) for bg in backgrounds(rng, args.scenes)]
    empty = backgrounds(rng, args.scenes // 2)
    print(f"{len(scenes)} scenes ({sum(len(f) for _, f in scenes)} faces of {MIN_FACE}-"
          f"{MAX_FACE} px), {len(empty)} photos without faces, {len(photos)} LFW photos")
    print("| detector | recall, scenes | false boxes per scene | false boxes per no-face "
          "photo | recall, LFW centre face | ms per 640x480 photo (1 thread) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for detector in DETECTORS:
        s = score(detector, scenes, empty, photos)
        print(f"| {detector} | {100 * s['recall']:.1f}% | {s['false_per_scene']:.3f} | "
              f"{s['false_per_empty']:.3f} | {100 * s['lfw_recall']:.1f}% | {s['ms']:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
