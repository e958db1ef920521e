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


def test_pseudo_labels_are_cached(tiny_lfw, tmp_path, monkeypatch):
    """The second call READS the cache file: overwritten labels come back as written."""
    monkeypatch.setenv("FACESSL_CACHE", str(tmp_path / "kmeans-cache"))
    images = _pool(tiny_lfw)
    first, centres = kmeans.cluster_pixels(images, clusters=3, seed=1, cache_key="pool")
    files = list((tmp_path / "kmeans-cache" / "pseudo-labels").glob("*.npz"))
    assert len(files) == 1
    stored = np.load(files[0])
    assert np.array_equal(stored["labels"], first) and np.array_equal(stored["centres"], centres)

    planted_labels = (first + 1) % 3  # a different, impossible-to-recompute answer
    planted_centres = np.full_like(centres, 0.25)
    np.savez(files[0], labels=planted_labels, centres=planted_centres)
    second, second_centres = kmeans.cluster_pixels(images, clusters=3, seed=1, cache_key="pool")
    assert np.array_equal(second, planted_labels) and not np.array_equal(second, first)
    assert np.array_equal(second_centres, planted_centres)

    # another key, seed, k or pool is another file, computed afresh
    for key, seed, k, pool in (("other", 1, 3, images), ("pool", 2, 3, images),
                               ("pool", 1, 4, images), ("pool", 1, 3, images[:-1])):
        labels, found = kmeans.cluster_pixels(pool, clusters=k, seed=seed, cache_key=key)
        fresh, fresh_centres = kmeans.cluster_pixels(pool, clusters=k, seed=seed)
        assert np.array_equal(labels, fresh) and np.allclose(found, fresh_centres)
        assert not np.allclose(found, 0.25)
    assert len(list((tmp_path / "kmeans-cache" / "pseudo-labels").glob("*.npz"))) == 5
    # the planted file is still what the first key answers
    again, _ = kmeans.cluster_pixels(images, clusters=3, seed=1, cache_key="pool")
    assert np.array_equal(again, planted_labels)
    # without a key nothing is read or written
    uncached, _ = kmeans.cluster_pixels(images, clusters=3, seed=1)
    assert np.array_equal(uncached, first)
    assert len(list((tmp_path / "kmeans-cache" / "pseudo-labels").glob("*.npz"))) == 5


def test_identity_agreement_is_one_for_identity_and_near_zero_for_noise():
    names = ["a"] * 10 + ["b"] * 10
    assert kmeans.identity_agreement(np.array([0] * 10 + [1] * 10), names) == {
        "nmi": 1.0, "ami": 1.0}
    noise = kmeans.identity_agreement(np.array([0, 1] * 10), names)
    assert noise["nmi"] < 0.1 and abs(noise["ami"]) < 0.1


def test_a_pool_larger_than_the_fit_is_clustered_on_a_sample_and_every_image_placed(
        tiny_lfw, monkeypatch):
    """Memory by the sample: a pool over FIT_IMAGES (here 20 of 48, read lazily from the
    cache) is fitted on 20 images, and every image gets its nearest centre."""
    built = cache.load_or_build(lfw.locate(tiny_lfw["folder"]), Preprocessing(128, 32),
                                quiet=True)
    paths = tiny_lfw["manifest"]["unlabelled"]
    monkeypatch.setattr(kmeans, "FIT_IMAGES", 20)
    labels, centres = kmeans.cluster_pixels(built.rows(paths), clusters=4, seed=0)
    images = built.take(paths)
    assert labels.shape == (len(paths),) and len(set(labels)) > 1
    assert np.array_equal(labels, kmeans.assign(images, centres))
    monkeypatch.setattr(kmeans, "FIT_IMAGES", 48)
    whole = kmeans.cluster_pixels(images, clusters=4, seed=0)[1]
    assert not np.allclose(np.sort(centres, axis=0), np.sort(whole, axis=0))  # the sample's
