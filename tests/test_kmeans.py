import numpy as np

from facessl.config import Preprocessing
from facessl.data import cache, lfw
from facessl.ssl import kmeans


def _pool(tiny_lfw):
    built = cache.load_or_build(lfw.locate(tiny_lfw["folder"]), Preprocessing(128, 32),
                                quiet=True)
    return built.take(tiny_lfw["manifest"]["unlabelled"])


def test_pseudo_labels_are_deterministic_for_a_seed(tiny_lfw):
    images = _pool(tiny_lfw)
    a, centres = kmeans.cluster_pixels(images, clusters=4, seed=0)
    b, _ = kmeans.cluster_pixels(images, clusters=4, seed=0)
    assert np.array_equal(a, b)
    assert a.shape == (len(images),) and set(a) == {0, 1, 2, 3}
    assert np.array_equal(kmeans.assign(images, centres), a)


def test_pseudo_labels_are_cached(tiny_lfw, private_cache):
    images = _pool(tiny_lfw)
    first, _ = kmeans.cluster_pixels(images, clusters=3, seed=1, cache_key="pool")
    assert len(list((private_cache / "pseudo-labels").glob("*.npz"))) == 1
    second, _ = kmeans.cluster_pixels(images, clusters=3, seed=1, cache_key="pool")
    assert np.array_equal(first, second)


def test_identity_agreement_is_one_for_identity_and_near_zero_for_noise():
    names = ["a"] * 10 + ["b"] * 10
    assert kmeans.identity_agreement(np.array([0] * 10 + [1] * 10), names) == {
        "nmi": 1.0, "ami": 1.0}
    noise = kmeans.identity_agreement(np.array([0, 1] * 10), names)
    assert noise["nmi"] < 0.1 and abs(noise["ami"]) < 0.1
