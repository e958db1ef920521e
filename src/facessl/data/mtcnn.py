"""MTCNN (Zhang et al. 2016): a face detector that also places the eyes, nose and mouth.

Three small networks in a cascade: P-Net proposes face windows over an image pyramid, R-Net
and O-Net re-score and refine them at 24 and 48 px; O-Net also gives five landmarks. The
landmarks let every face be aligned to the pose LFW's faces have (`data.faces`). The
network code is facessl's own; the trained weights are the ones the MIT-licensed
`facenet-pytorch` wheel ships (`facenet_pytorch/data/{pnet,rnet,onet}.pt`), read as plain
tensors without importing that package, which pins an old torch and torchvision.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facessl.errors import FacesslError

WEIGHTS_PACKAGE = "facenet_pytorch"
# The face probability each stage needs, and the pyramid's step. The paper's were 0.6 for
# P-Net and a step of 0.709 (half the area); 0.7 and 0.6 halved the windows R-Net sees and
# the time, with the same recall and fewer false boxes (benchmarks/detection.py).
THRESHOLDS = (0.7, 0.7, 0.7)
PYRAMID_FACTOR = 0.6
PNET_CELL = 12  # P-Net's window, px; its map has stride 2


class _PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return F.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)


class _RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_transposed(x)))
        return F.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class _ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2 = nn.Linear(256, 2), nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(_flatten_transposed(self.prelu4(self.conv4(x)))))
        return F.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


def _flatten_transposed(x: torch.Tensor) -> torch.Tensor:
    """The original networks were trained on transposed images: their dense layers read
    the map in (width, height, channel) order."""
    return x.permute(0, 3, 2, 1).flatten(1)


def settings_tag() -> str:
    """"mtcnn" and the settings that change which faces it finds (`faces.detector_tag`)."""
    return f"mtcnn-p{THRESHOLDS[0]:g}-s{PYRAMID_FACTOR:g}"


def weights_folder() -> Path:
    """Where the installed facenet-pytorch wheel keeps the MTCNN weights (not imported)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    folder = Path(spec.origin).parent / "data" if spec and spec.origin else None
    if folder is None or not (folder / "onet.pt").is_file():
        raise FacesslError(
            "the MTCNN face detector's weights come from the facenet-pytorch wheel, which is "
            "not installed; run: pip install --no-deps facenet-pytorch==2.6.0 (it pins an old "
            "torch, so without its dependencies), or use `detector` haar.")
    return folder


@functools.cache
def _networks() -> tuple[nn.Module, nn.Module, nn.Module]:
    """P-, R- and O-Net with their trained weights, loaded once per process."""
    folder, nets = weights_folder(), (_PNet(), _RNet(), _ONet())
    for name, net in zip(("pnet", "rnet", "onet"), nets):
        try:
            net.load_state_dict(torch.load(folder / f"{name}.pt", map_location="cpu",
                                           weights_only=True))
        except (RuntimeError, OSError, ValueError) as exc:
            raise FacesslError(f"the MTCNN weights {folder / name}.pt do not load ({exc}); "
                               "reinstall facenet-pytorch==2.6.0.") from None
        net.eval().to(memory_format=torch.channels_last)  # as BatchPipeline: oneDNN's layout
    return nets


@torch.inference_mode()
def detect(rgb: np.ndarray, min_face: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes N x 4 as x0, y0, x1, y1; probabilities N; landmarks N x 5 x 2) of the faces
    of at least `min_face` px in an H x W x 3 uint8 photo, most probable first. Landmarks:
    the eyes, the nose tip and the mouth corners, image-left before image-right.

    The networks run in torch; resizing (OpenCV's area filter) and the box bookkeeping run
    in NumPy, which measured several times faster than torch ops on these small arrays."""
    pnet, rnet, onet = _networks()
    image = np.ascontiguousarray(rgb, dtype=np.uint8)  # resized as uint8: faster
    boxes, landmarks = _propose(pnet, image, min_face), None
    for stage, net, side in ((1, rnet, 24), (2, onet, 48)):
        if not len(boxes):
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        boxes = _square(boxes)
        out = [o.numpy() for o in net(_windows(image, boxes, side))]
        keep = out[0] >= THRESHOLDS[stage]
        boxes, out = boxes[keep], [o[keep] for o in out]
        if stage == 2:  # landmarks are given relative to the box O-Net was shown
            size = boxes[:, 2:4] - boxes[:, 0:2] + 1
            landmarks = (boxes[:, None, 0:2] - 1
                         + out[2].reshape(-1, 2, 5).transpose(0, 2, 1) * size[:, None, :])
        boxes = np.concatenate([_regress(boxes[:, :4], out[1], True), out[0][:, None]], 1)
        keep = _drop_nested(boxes, 0.7) if stage == 2 else _nms(boxes, 0.7)
        boxes = boxes[keep]
    order = np.argsort(-boxes[:, 4], kind="stable")
    return boxes[order, :4], boxes[order, 4], landmarks[keep][order]


def _propose(pnet: nn.Module, image: np.ndarray, min_face: int) -> np.ndarray:
    """P-Net over the pyramid whose first level shrinks a `min_face` face to its 12 px
    window: candidate boxes N x 5 (x0, y0, x1, y1, probability), regressed."""
    height, width = image.shape[:2]
    scale, found, level = PNET_CELL / min_face, [], image
    while min(height, width) * scale >= PNET_CELL:
        # the first level by area averaging (it may shrink a big photo many times); each
        # next one, 0.709 of the last, bilinearly from it: 20x cheaper, measured
        level = cv2.resize(level, (int(width * scale + 1), int(height * scale + 1)),
                           interpolation=cv2.INTER_AREA if level is image else cv2.INTER_LINEAR)
        prob, offsets = pnet(_normalised(level[None]))
        prob, offsets = prob[0].numpy(), offsets[0].numpy()
        ys, xs = np.nonzero(prob >= THRESHOLDS[0])
        if len(ys):
            start = np.stack([xs, ys], 1) * 2.0
            boxes = np.concatenate([np.floor((start + 1) / scale),
                                    np.floor((start + PNET_CELL) / scale),
                                    prob[ys, xs][:, None], offsets[:, ys, xs].T], 1)
            found.append(boxes[_nms(boxes, 0.5)])
        scale *= PYRAMID_FACTOR
    if not found:
        return np.zeros((0, 5))
    boxes = np.concatenate(found)
    boxes = boxes[_nms(boxes, 0.7)]
    return np.concatenate([_regress(boxes[:, :4], boxes[:, 5:9], False), boxes[:, 4:5]], 1)


def _regress(boxes: np.ndarray, offsets: np.ndarray, plus_one: bool) -> np.ndarray:
    """Move each box's edges by the network's offsets, given in box widths and heights."""
    size = boxes[:, 2:4] - boxes[:, 0:2] + (1 if plus_one else 0)
    return boxes + offsets * np.tile(size, 2)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square around its centre, on whole pixels."""
    size = boxes[:, 2:4] - boxes[:, 0:2]
    side = size.max(axis=1, keepdims=True)
    corner = boxes[:, 0:2] + size / 2 - side / 2
    return np.concatenate([np.trunc(corner), np.trunc(corner + side), boxes[:, 4:5]], 1)


def _windows(image: np.ndarray, boxes: np.ndarray, side: int) -> torch.Tensor:
    """Each box's pixels (black beyond the photo, as the networks were trained) at side px.

    R-Net's many 24 px windows are resized bilinearly (4x cheaper than area averaging, with
    the same recall, measured); O-Net's few 48 px ones, whose landmarks align the face, by
    area averaging."""
    height, width = image.shape[:2]
    filter_ = cv2.INTER_LINEAR if side == 24 else cv2.INTER_AREA
    windows = np.empty((len(boxes), side, side, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes[:, :4].astype(int)):
        if x0 >= 0 and y0 >= 0 and x1 < width and y1 < height:
            region = image[y0:y1 + 1, x0:x1 + 1]
        else:
            region = np.zeros((y1 - y0 + 1, x1 - x0 + 1, 3), np.uint8)
            sx, sy, ex, ey = max(x0, 0), max(y0, 0), min(x1 + 1, width), min(y1 + 1, height)
            if sx < ex and sy < ey:
                region[sy - y0:ey - y0, sx - x0:ex - x0] = image[sy:ey, sx:ex]
        windows[i] = cv2.resize(region, (side, side), interpolation=filter_)
    return _normalised(windows)


def _normalised(pixels: np.ndarray) -> torch.Tensor:
    """N x H x W x 3 uint8 -> the networks' input: (x - 127.5) / 128, channels-last."""
    return (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() - 127.5) / 128.0


def _nms(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression by probability (column 4), overlap as intersection
    over union: the indices kept. OpenCV's loop: the NumPy one cost 8 ms a photo."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    rects = np.concatenate([boxes[:, :2], boxes[:, 2:4] - boxes[:, :2] + 1], 1)
    keep = cv2.dnn.NMSBoxes(rects.tolist(), boxes[:, 4].tolist(), 0.0, threshold)
    return np.asarray(keep, np.int64).reshape(-1)


def _drop_nested(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """The last suppression, over the few final boxes: overlap is intersection over the
    smaller box, so a box inside a bigger, more probable one goes."""
    x0, y0, x1, y1 = boxes[:, :4].T
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    order, keep = np.argsort(-boxes[:, 4], kind="stable"), []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        inter = (np.clip(np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]) + 1,
                         0, None)
                 * np.clip(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]) + 1,
                           0, None))
        order = rest[inter / np.minimum(area[best], area[rest]) <= threshold]
    return np.array(keep, dtype=np.int64)
