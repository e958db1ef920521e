"""The face model's label-free levers, each measured on lfw62-v1 *val* (test never read).

Faces are found and aligned as the product cuts them (MTCNN, 96 px) and described by
EfficientNet-Lite0's block-4 map (or the block named by --trunk). For each face and view
(the face, its mirror image, +-2 px shifts of both) the raw map is kept once, in
~/.cache/facessl/bench, so each variant below costs seconds:

- raw: the face's map, unit length
- pool: whitened on the pool (the face space before this benchmark's change)
- flip-sum: map + mirrored-back mirror map, then whitened (`--flip` before)
- per-view: each view whitened on its own, the unit rows averaged
- per-view + shifts
- + aug-invariant: a second whitening that shrinks what a pool face's own views vary along
  (each face and its views as a class of its own: instance discrimination in closed form)
- compact: the same with the first 1,024 whitened directions only (no residual part)
- within-class: the k enrolled photos' own spread around their person's mean shrunk
  (a whitening of the within-person scatter, fitted per draw on the support alone)

Scored by nearest class mean at k = 1 and 5 (5 draws of the k), on val (124 faces) and on
the community's train photos 11 to 20 of each person ("rest").

    python benchmarks/face_model_levers.py [--pool 6000] [--trunk lite0:4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tqdm import tqdm

from facessl.augment import BatchPipeline, to_tensor
from facessl.config import Preprocessing
from facessl.data import lfw
from facessl.data.faces import faces_in_photo
from facessl.data.photos import load_photo
from facessl.data.splits import load_manifest, person_of, resolve_split_path, subsample
from facessl.errors import FacesslError
from facessl.files import cache_root
from facessl.space.face_space import COMPONENTS, SHRINK
from facessl.space.neighbours import l2_normalise
from facessl.space.whitening import Whitening

PREP = Preprocessing(size=96)
SHIFTS = ((0, 2), (0, -2), (2, 0), (-2, 0))  # (rows, columns) in pixels of the 96 px face


def faces(name: str, source, paths: list[str]) -> tuple[np.ndarray, list[str]]:
    """Detected, aligned crops of `paths` (the largest face; photos without one left out)
    and the paths kept, cached."""
    file = cache_root() / "bench" / f"levers-{name}-{len(paths)}.npz"
    if not file.is_file():
        wanted, found = set(paths), {}
        for rel, data in tqdm(source.iter_images(), desc=f"faces ({name})",
                              total=source.count()):
            if rel in wanted:
                try:
                    cut = faces_in_photo(load_photo(data, rel), PREP, True, detector="mtcnn")
                except FacesslError:
                    continue
                if cut:
                    found[rel] = cut[0][1]
        kept = [p for p in paths if p in found]
        file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(file, faces=np.stack([found[p] for p in kept]), kept=np.array(kept))
    data = np.load(file)
    return data["faces"], [str(p) for p in data["kept"]]


def trunk(model: str) -> torch.nn.Module:
    from input_select import trunk as load

    return load(model, PREP.size)


@torch.inference_mode()
def view_maps(network, crops: np.ndarray, block: int, shifts: bool = True) -> np.ndarray:
    """N x V x D float16 maps: the face, its mirror, then SHIFTS of each (mirror's mirrored
    back so positions line up is *not* done: each view is its own descriptor)."""
    pipeline, rows = BatchPipeline((0.5,) * 3, (0.5,) * 3), []

    def run(x):
        x = network._swish(network._bn0(network._conv_stem(x)))
        for b in network._blocks[:block + 1]:
            x = b(x)
        return x

    for start in range(0, len(crops), 32):
        x = pipeline(to_tensor(crops[start:start + 32]), train=False)
        views = [x, x.flip(3)]
        padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
        for dy, dx in SHIFTS if shifts else ():
            shifted = padded[:, :, 2 + dy:2 + dy + x.shape[2], 2 + dx:2 + dx + x.shape[3]]
            views += [shifted, shifted.flip(3)]
        out = run(torch.cat(views))
        n = len(x)
        maps = [out[i * n:(i + 1) * n] for i in range(len(views))]
        maps.append((maps[0] + maps[1].flip(3)))  # the flip-sum descriptor, last
        rows.append(torch.stack([m.flatten(1) for m in maps], 1).half().numpy())
    return np.concatenate(rows)


def described(name, source, paths, network, spec, shifts=True) -> tuple[np.ndarray, list[str]]:
    """Maps of every view (shifts too, or the face and its mirror only), cached."""
    views = 11 if shifts else 3
    file = cache_root() / "bench" / f"levers-maps-{spec}-{views}-{name}-{len(paths)}.npy"
    crops, kept = faces(name, source, paths)
    if not file.is_file():
        started = time.perf_counter()
        np.save(file, view_maps(network, crops, int(spec.split("-")[1]), shifts))
        seconds = time.perf_counter() - started
        per_view = 1000 * seconds / len(crops) / (views - 1)
        print(f"described {name} ({spec}): {len(crops)} faces x {views - 1} views in "
              f"{seconds:.0f} s ({per_view:.1f} ms per face and view)", flush=True)
    return np.load(file, mmap_mode="r"), kept


def invariance(views: np.ndarray, shrink: float) -> np.ndarray:
    """A K x K map that shrinks the directions a pool face's own views (N x V x K unit rows)
    spread along (within-instance scatter, regularised by `shrink` x its mean variance)."""
    centred = (views - views.mean(1, keepdims=True)).reshape(-1, views.shape[2])
    scatter = torch.from_numpy(centred.T @ centred / len(centred)).double()
    values, vectors = torch.linalg.eigh(scatter)
    scale = 1 / (values + shrink * values.mean()).sqrt()
    return ((vectors * scale) @ vectors.T).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=6000)
    parser.add_argument("--trunk", default="lite0-4")
    parser.add_argument("--ensemble", nargs="*", default=[], metavar="MODEL-BLOCK",
                        help="further trunks whose per-view rows are concatenated (face and "
                             "mirror only), e.g. lite1-6 lite2-6")
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    source = lfw.locate()
    split = load_manifest(resolve_split_path("lfw62-v1"))
    roles = {"first": [p for n in split.people for p in split.community[n]["train"][:10]],
             "rest": [p for n in split.people for p in split.community[n]["train"][10:20]],
             "val": [p for n in split.people for p in split.community[n]["val"]],
             "pool": subsample(list(split.unlabelled), args.pool, seed=0)}
    network = trunk(args.trunk.split("-")[0])
    maps, names = {}, {}
    for role, paths in roles.items():
        maps[role], kept = described(role, source, paths, network, args.trunk)
        names[role] = np.array([person_of(p) for p in kept])
    # "rest" is scored as train photos beyond the support: the support is the first 10
    train_names = np.concatenate([names["first"], names["rest"]])
    in_first = np.r_[np.ones(len(names["first"]), bool), np.zeros(len(names["rest"]), bool)]
    print(f"pool {len(names['pool'])} faces; val {len(names['val'])}; train "
          f"{len(train_names)} ({in_first.sum()} first-10)")
    print("| variant | k = 1 val / rest | k = 5 val / rest |\n| --- | --- | --- |")

    def report(label, rows_of):
        """`rows_of(role)` -> unit rows of that role's faces."""
        t = np.concatenate([rows_of("first"), rows_of("rest")])
        v = rows_of("val")
        cells = []
        for shots in (1, 5):
            s = np.array([_ncm_first(t, train_names, in_first, v, names["val"], shots, d)
                          for d in range(args.draws)])
            cells.append(f"{s[:, 0].mean():5.1f} / {s[:, 1].mean():5.1f}")
        print(f"| {label} | {' | '.join(cells)} |", flush=True)

    def view(role, v, back=False, m=None):
        rows = np.asarray((maps if m is None else m)[role][:, v], np.float32)
        return mirrored_back(rows, network, args.trunk) if back else rows

    report("raw (unit length)", lambda r: l2_normalise(view(r, 0)))
    w0 = Whitening.fit(view("pool", 0), SHRINK, COMPONENTS)
    report("pool whitening (the face space before)", lambda r: w0(view(r, 0)))
    wsum = Whitening.fit(view("pool", 10), SHRINK, COMPONENTS)
    report("flip-sum, whitened", lambda r: wsum(view(r, 10)))
    report("per-view (face, mirror), whitening fitted on faces",
           lambda r: l2_normalise(w0(view(r, 0)) + w0(view(r, 1))))
    w01 = Whitening.fit(np.concatenate([view("pool", 0), view("pool", 1)]), SHRINK, COMPONENTS)
    report("per-view (face, mirror), fitted on faces + mirrors (the face model's)",
           lambda r: l2_normalise(w01(view(r, 0)) + w01(view(r, 1))))
    wback = Whitening.fit(np.concatenate([view("pool", 0), view("pool", 1, True)]), SHRINK,
                          COMPONENTS)
    report("per-view, the mirror's map mirrored back (positions line up)",
           lambda r: l2_normalise(wback(view(r, 0)) + wback(view(r, 1, True))))
    chosen = {r: l2_normalise(w01(view(r, 0)) + w01(view(r, 1))) for r in maps}
    t = np.concatenate([chosen["first"], chosen["rest"]])
    for shrink in (0.3, 1.0, 3.0):
        s = np.array([_ncm_first(t, train_names, in_first, chosen["val"], names["val"], 5, d,
                                 within=shrink) for d in range(args.draws)])
        print(f"| the face model's + within-class whitening from the 5 enrolled photos "
              f"(shrink {shrink}) | - | {s[:, 0].mean():5.1f} / {s[:, 1].mean():5.1f} |",
              flush=True)
    report("per-view + 4 shifts of each", lambda r: l2_normalise(
        sum(w01(view(r, v)) for v in range(10))))
    for dims in (1024, 512):
        pca = Whitening.fit(chosen["pool"], 1e-9, dims)  # rotation onto the top directions
        top = torch.from_numpy(pca.components).T
        report(f"the face model's, compact: top {dims} directions of its rows", lambda r: (
            l2_normalise((torch.from_numpy(chosen[r] - pca.mean) @ top).numpy())))
    compact = Whitening(w01.mean, w01.components, w01.scale, 0.0)
    report("the face model's, whitened directions only (no residual, 1,024)",
           lambda r: l2_normalise(compact(view(r, 0)) + compact(view(r, 1))))
    for shrink in (0.1, 1.0):
        stacked = np.stack([compact(view("pool", v)[:3000]) for v in range(10)], 1)
        inv = torch.from_numpy(np.asarray(invariance(stacked, shrink), np.float32))
        report(f"that + aug-invariant whitening over views (shrink {shrink})", lambda r: (
            l2_normalise((torch.from_numpy(l2_normalise(
                compact(view(r, 0)) + compact(view(r, 1)))) @ inv).numpy())))
    for spec in args.ensemble:
        extra, _ = {}, None
        other = trunk(spec.split("-")[0])
        for role, paths in roles.items():
            extra[role], _ = described(role, source, paths, other, spec, shifts=False)
        w = Whitening.fit(np.concatenate([view("pool", 0, m=extra), view("pool", 1, m=extra)]),
                          SHRINK, COMPONENTS)
        rows = {r: l2_normalise(w(view(r, 0, m=extra)) + w(view(r, 1, m=extra))) for r in maps}
        report(f"{spec} alone (per-view)", rows.get)
        chosen = {r: np.concatenate([chosen[r], rows[r]], 1) for r in maps}
        report(f"ensemble: + {spec}", lambda r: l2_normalise(chosen[r]))


def mirrored_back(rows: np.ndarray, network, spec: str) -> np.ndarray:
    """N x (C x H x W) maps of mirror images, mirrored back so positions line up."""
    side = int(round((rows.shape[1] / _channels(network, spec)) ** 0.5))
    return rows.reshape(len(rows), -1, side, side)[..., ::-1].reshape(len(rows), -1)


def _channels(network, spec: str) -> int:
    block = network._blocks[int(spec.split("-")[1])]
    return block._project_conv.out_channels


def _ncm_first(train, names, in_first, val, val_names, shots, seed, within=None):
    """`identity_select.ncm` with the support drawn from the first-10 photos only;
    `within`: first shrink the support's within-person scatter (by that regulariser)."""
    rng = np.random.default_rng(seed)
    people = np.unique(names)
    support = np.zeros(len(names), bool)
    for person in people:
        mine = np.flatnonzero((names == person) & in_first)
        support[rng.choice(mine, min(shots, len(mine)), replace=False)] = True
    if within is not None:
        shrink = _within_class(train[support], names[support], within)
        train, val = shrink(train), shrink(val)
    means = l2_normalise(np.stack([train[support & (names == p)].mean(0) for p in people]))
    v = (people[(val @ means.T).argmax(1)] == val_names).mean()
    rest = ~in_first
    r = (people[(train[rest] @ means.T).argmax(1)] == names[rest]).mean()
    return 100 * v, 100 * r


def _within_class(rows, names, shrink):
    """Unit rows -> unit rows with the directions `rows` of one person spread along
    (their scatter's eigenvectors, at most N - C of them) scaled by
    1 / sqrt(1 + variance / (shrink x mean variance))."""
    centred = np.concatenate([rows[names == p] - rows[names == p].mean(0)
                              for p in np.unique(names)])
    _, values, vectors = np.linalg.svd(centred, full_matrices=False)
    variance = values ** 2 / len(centred)
    scale = 1 / np.sqrt(1 + variance / (shrink * variance.mean()))
    return lambda x: l2_normalise(x - ((x @ vectors.T) * (1 - scale)) @ vectors)


if __name__ == "__main__":
    main()
