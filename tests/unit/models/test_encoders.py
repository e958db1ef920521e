"""FaceEncoder (models/encoders.py): evaluation and the product describe faces identically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facessl.config import Preprocessing
from facessl.data import cache, lfw
from facessl.errors import FacesslError
from facessl.models.checkpoint import load_backbone
from facessl.models.encoders import FaceEncoder
from facessl.recognition.classifier import FaceClassifier
from facessl.space.neighbours import l2_normalise

PEOPLE = ("Ariel_Sharon", "Donald_Rumsfeld")


def _faces(tiny_lfw, prep: Preprocessing, per_person: int = 3) -> tuple[np.ndarray, list[str]]:
    """Real LFW faces from the image cache: `per_person` train photos of each of PEOPLE."""
    community = tiny_lfw["manifest"]["community"]
    paths = [p for person in PEOPLE for p in community[person]["train"][:per_person]]
    built = cache.load_or_build(lfw.locate(tiny_lfw["folder"]), prep, quiet=True)
    return built.take(paths), [p.split("/")[0] for p in paths]


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0")


def test_evaluate_and_the_product_give_the_same_descriptors(tiny_lfw, lite0):
    faces, names = _faces(tiny_lfw, Preprocessing(size=96))
    assert faces.shape == (6, 96, 96, 3) and faces.dtype == np.uint8
    model, meta = lite0
    evaluated = FaceEncoder(model, meta, block=4).describe(faces)  # `facessl evaluate --block 4`
    assert evaluated.shape == (6, 40 * 12 * 12) and evaluated.dtype == np.float32
    product = FaceClassifier().fit(faces, names)  # a bare backbone: the face, unit length
    described = product.transform(faces)
    assert described.shape == evaluated.shape
    assert np.allclose(described, l2_normalise(evaluated), atol=1e-5, rtol=1e-5)
    assert np.allclose(product.support_, described, atol=1e-6)  # what it enrolled
    # and the descriptors tell faces apart: not a constant map
    assert np.abs(evaluated[0] - evaluated[3]).max() > 1e-2


def test_the_pooled_embedding_is_the_backbones_own(tiny_lfw):
    model, meta = load_backbone("random:tinyvgg")
    faces, _ = _faces(tiny_lfw, Preprocessing(size=32))
    encoder = FaceEncoder(model, meta)
    assert encoder.preprocessing == Preprocessing(128, 32)
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        expected = model.embed((x - 0.5) / 0.5).numpy()
    described = encoder.describe(faces)
    assert described.shape == (6, model.embedding_dim)
    assert np.allclose(described, expected, atol=1e-5)
    # more faces than one batch come back in order
    many = np.concatenate([faces] * 4)
    assert np.allclose(encoder.describe(many), np.concatenate([expected] * 4), atol=1e-5)
    assert encoder.describe(faces[:0]).shape[0] == 0


def test_a_block_needs_an_efficientnet(tiny_lfw):
    model, meta = load_backbone("random:tinyvgg")
    with pytest.raises(FacesslError, match="EfficientNet-Lite0 only; this backbone is tinyvgg"):
        FaceEncoder(model, meta, block=4)
    model, meta = load_backbone("random:resnet18")
    with pytest.raises(FacesslError, match="this backbone is resnet18"):
        FaceEncoder(model, meta, block=0)


def test_the_mirror_view_is_the_mirror_images_own_map(tiny_lfw, lite0):
    model, meta = lite0
    faces, _ = _faces(tiny_lfw, Preprocessing(size=96), per_person=2)
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])  # N x H x W x C: W is axis 2
    encoder = FaceEncoder(model, meta, block=4)
    plain, plain_mirrored = encoder.describe(faces), encoder.describe(mirrored)
    mirror_view = encoder.describe(faces, view="mirror")
    assert np.allclose(mirror_view, plain_mirrored, atol=1e-4)  # as the network sees it
    assert not np.allclose(mirror_view, plain, atol=1e-2)  # a face is not its mirror image

    def mirror(d):  # N x (C x H x W), the block-4 map's layout, mirrored along W
        return d.reshape(len(d), 40, 12, 12)[..., ::-1].reshape(len(d), -1)

    # aligned (what ssl.identity pairs): mirrored back, so positions line up with the face's
    assert np.allclose(encoder.describe(faces, view="mirror", aligned=True),
                       mirror(plain_mirrored), atol=1e-4)
    with pytest.raises(FacesslError, match="unknown view 'upside-down'; expected one of: "
                                           "face, mirror"):
        encoder.describe(faces, view="upside-down")


def test_the_pooled_embeddings_mirror_view_is_the_mirror_images(tiny_lfw, lite0):
    model, meta = lite0
    faces, _ = _faces(tiny_lfw, Preprocessing(size=96), per_person=1)
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])
    encoder = FaceEncoder(model, meta)  # no block: the 1280-d pooled embedding
    plain = encoder.describe(faces)
    assert not np.allclose(plain, encoder.describe(mirrored), atol=1e-3)
    assert np.allclose(encoder.describe(faces, view="mirror"), encoder.describe(mirrored),
                       atol=1e-4)
