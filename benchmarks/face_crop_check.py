"""Do detector crops of a photo look like LFW's own crops? Measure it, and show it.

LFW photos are 250x250 with the face in the middle, so the right crop of an LFW photo is
known: its central `crop` pixels (`cache.decode_face`). This script runs the detector on
every 33rd photo of the archive (about 400), prints where the detector's box lies in the
250 px frame (the numbers behind `faces.LFW_BOX_SIDE`), compares each detector crop with
the central crop, and saves a picture: LFW's crops on top, detector crops below.

The detection resolution is swept over one 10% step of the cascade's scale pyramid, so the
box size is averaged over the pyramid's steps as it will be for photos of any size.

    python benchmarks/face_crop_check.py [--out /tmp/face_crop_check.png] [--data PATH]

Expected output (about 10 s of CPU): 396/401 faces found, side 117.5 +- 7.3 px, frame =
2.127 boxes, detector crop vs central crop 14.5 grey levels apart on average (two
different LFW faces: 55.5).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from facessl.config import Preprocessing
from facessl.data import lfw
from facessl.data.cache import LFW_SIDE, decode_face
from facessl.data.faces import (
    DETECTORS,
    LFW_BOX_SIDE,
    align_like_lfw,
    crop_like_lfw,
    detect_faces,
)
from facessl.data.photos import load_photo

EVERY = 33  # sample every 33rd photo: ~400 of LFW's 13,233, spread over all people
SHOWN = 8
CENTRE_TOLERANCE = 30  # px; a box further from the frame's centre is someone else


def lfw_face(image: Image.Image, index: int, count: int, detector: str):
    """The detector box of the centred face, at a resolution that sweeps one pyramid step."""
    min_size = round(40 * 1.1 ** (index / count))
    centre = LFW_SIDE / 2
    near = [b for b in detect_faces(image, min_size=min_size, detector=detector)
            if max(abs(b.x + b.w / 2 - centre), abs(b.y + b.h / 2 - centre)) < CENTRE_TOLERANCE]
    return min(near, key=lambda b: abs(b.x + b.w / 2 - centre) + abs(b.y + b.h / 2 - centre),
               default=None)


def report(boxes: list, landmarks: list, crops: dict) -> None:
    """Where the boxes (and landmarks) lie in the frame; how far each cut is from LFW's."""
    side, cx, cy = np.array(boxes).T
    print(f"detected side: {side.mean():.1f} +- {side.std():.1f} px of the {LFW_SIDE} px frame")
    print(f"detected centre: ({cx.mean():.1f}, {cy.mean():.1f}) +- "
          f"({cx.std():.1f}, {cy.std():.1f}) px; frame centre {LFW_SIDE / 2}")
    print(f"frame = {LFW_SIDE / side.mean():.3f} boxes (LFW_BOX_SIDE is {LFW_BOX_SIDE}, "
          "measured for the Haar cascade)")
    if landmarks:
        mean, spread = np.mean(landmarks, axis=0), np.std(landmarks, axis=0).mean()
        print(f"landmarks in the frame (LFW_LANDMARKS; eyes, nose, mouth corners): "
              f"{np.round(mean, 1).tolist()}, +- {spread:.1f} px on average")
    central = np.stack(crops["LFW central crop"]).astype(float)
    other = np.abs(central - np.roll(central, 1, axis=0)).mean(axis=(1, 2, 3))
    for name, cut in crops.items():
        if name != "LFW central crop":
            same = np.abs(central - np.stack(cut).astype(float)).mean(axis=(1, 2, 3))
            print(f"mean |{name} - central crop|: {same.mean():.1f} grey levels (median "
                  f"{np.median(same):.1f}, 90th pct {np.percentile(same, 90):.1f})")
    print(f"two different LFW faces: {other.mean():.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/face_crop_check.png"),
                        help="where to save the side-by-side picture")
    parser.add_argument("--data", type=Path, default=None,
                        help="LFW archive or folder (default: the usual search order)")
    parser.add_argument("--detector", choices=DETECTORS, default="haar")
    args = parser.parse_args()

    sample = [data for i, (_, data) in enumerate(lfw.locate(args.data).iter_images())
              if i % EVERY == 0]
    prep = Preprocessing(size=64)
    boxes, landmarks, crops = [], [], {"LFW central crop": [], "box crop": []}
    for i, data in enumerate(sample):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LFW's one truncated JPEG
            image = load_photo(data)
            box = lfw_face(image, i, len(sample), args.detector)
            if box is None:
                continue
            boxes.append((box.w, box.x + box.w / 2, box.y + box.h / 2))
            crops["LFW central crop"].append(decode_face(data, prep)[0])
            crops["box crop"].append(crop_like_lfw(image, box, prep))
            if box.landmarks is not None:
                landmarks.append(box.landmarks)
                crops.setdefault("aligned crop", []).append(
                    align_like_lfw(image, box.landmarks, prep))
    print(f"{args.detector}: faces found: {len(boxes)}/{len(sample)} LFW photos")
    report(boxes, landmarks, crops)
    picks = np.linspace(0, len(boxes) - 1, SHOWN).round().astype(int)
    rows = [np.concatenate(np.stack(cut)[picks], axis=1) for cut in crops.values()]
    picture = Image.fromarray(np.concatenate(rows, axis=0).astype(np.uint8))
    picture = picture.resize((picture.width * 2, picture.height * 2), Image.Resampling.NEAREST)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out)
    print(f"saved {args.out}: rows: {', '.join(crops)}")


if __name__ == "__main__":
    main()
