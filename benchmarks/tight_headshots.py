"""Faces whose aligned frame leaves the photo: how to fill it, chosen on lfw62-v1 *val*.

A headshot cut tight (the face fills the photo, as in many public photo sets) leaves part
of the face model's aligned frame outside the photo. LFW's own 250 px photos almost never
do, so LFW numbers cannot see the difference; this benchmark makes such photos from LFW:
the central 130 x 130 px of each photo, scaled to 150 px. For each way of filling the frame
beyond the photo (black, the edge pixel repeated, the photo mirrored at its edge):

- enrol half of the 62 people (seeded draws) from 5 of their first 10 train photos, as
  they are (the face model's default face space, its threshold from its held-out strangers);
- name their val photos and train photos 11 to 14, as they are and cut tight;
- the other half's photos are strangers: the share of them let in is printed too.

    python benchmarks/tight_headshots.py [--draws 10]

Val and train photos only; test photos are never read.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image
from tqdm import tqdm

from facessl.data import faces as cutting
from facessl.data import lfw
from facessl.data.photos import load_photo
from facessl.data.splits import load_manifest, resolve_split_path
from facessl.library.default_space import resolve_backbone
from facessl.space.face_model import FaceModel
from facessl.space.neighbours import prototypes

BORDERS = {"black": "black", "edge repeated": "edge", "mirrored (the default)": "reflect"}
TIGHT = (60, 60, 190, 190)  # the central 130 px of a 250 px LFW photo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=10)
    args = parser.parse_args()
    model = FaceModel.load(resolve_backbone("default", quiet=False))
    split = load_manifest(resolve_split_path("lfw62-v1"))
    people = sorted(split.people)
    support = {p: split.community[p]["train"][:10] for p in people}
    queries = {p: split.community[p]["val"] + split.community[p]["train"][10:14]
               for p in people}
    wanted = {path for p in people for path in support[p] + queries[p]}
    photos = {rel: load_photo(data, rel) for rel, data in
              tqdm(lfw.locate().iter_images(), desc="reading photos", total=13233)
              if rel in wanted}

    def rows(paths: list[str], tight: bool) -> tuple[np.ndarray, np.ndarray]:
        """Described largest faces of `paths` and which paths had one."""
        crops, kept = [], []
        for i, rel in enumerate(paths):
            photo = photos[rel]
            if tight:
                photo = photo.crop(TIGHT).resize((150, 150), Image.Resampling.BILINEAR)
            found = cutting.faces_in_photo(photo, model.preprocessing, True,
                                           detector=model.detector)
            if found:
                crops.append(found[0][1])
                kept.append(i)
        return model.describe(np.stack(crops)), np.array(kept)

    print(f"face model: {model.source}; {args.draws} draws of {len(people) // 2} enrolled "
          "people x 5 photos\n")
    print("| frame beyond the photo | queries | named right and accepted | strangers let in |")
    print("| --- | --- | --- | --- |")
    paths = [path for p in people for path in queries[p]]
    owners = np.array([p for p in people for _ in queries[p]])
    for label, border in BORDERS.items():
        cutting.ALIGN_BORDER = border  # one of cutting.ALIGN_BORDERS
        enrolled_rows = {p: rows(support[p], False)[0] for p in people}
        for tight in (False, True):
            described, kept = rows(paths, tight)
            names = owners[kept]
            right, let_in = _open_set(model, enrolled_rows, described, names, args.draws)
            print(f"| {label} | {'cut tight' if tight else 'as they are'} "
                  f"({len(kept)} of {len(paths)} with a face) | {right:.1f}% | "
                  f"{let_in:.1f}% |", flush=True)


def _open_set(model, enrolled_rows, rows, names, draws) -> tuple[float, float]:
    """Mean over draws of (named right and accepted among enrolled people's photos,
    let in among the others'), in percent, at the threshold that accepts 5% of the face
    space's held-out strangers (the classifier's rule)."""
    people = sorted(enrolled_rows)
    results = []
    for draw in range(draws):
        rng = np.random.default_rng(draw)
        enrolled = sorted(rng.choice(people, len(people) // 2, replace=False))
        shots = [enrolled_rows[p][rng.choice(len(enrolled_rows[p]), 5, replace=False)]
                 for p in enrolled]
        labels = np.repeat(np.arange(len(enrolled)), [len(s) for s in shots])
        means = prototypes(np.concatenate(shots), labels, len(enrolled))
        threshold = np.quantile((model.space.strangers @ means.T).max(1), 0.95,
                                method="higher")
        scores = rows @ means.T
        mine = np.isin(names, enrolled)
        named = (np.array(enrolled)[scores.argmax(1)] == names) & (scores.max(1) >= threshold)
        results.append((named[mine].mean(), (scores.max(1) >= threshold)[~mine].mean()))
    return tuple(100 * np.mean(results, 0))


if __name__ == "__main__":
    main()
