"""The k-means / nearest-neighbour backend: faiss agrees with numpy and scikit-learn on real
face rows, FACESSL_NO_FAISS=1 really takes the fallback, and bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score

from facessl.config import Preprocessing
from facessl.data import cache, lfw
from facessl.errors import FacesslError
from facessl.space import search
from facessl.space.neighbours import l2_normalise
from facessl.ssl import kmeans as kmeans_pixels

HAS_FAISS = search._faiss() is not None
needs_faiss = pytest.mark.skipif(not HAS_FAISS, reason="faiss is not installed (pip install "
                                 "'facessl[scale]'); only the numpy / scikit-learn path runs")
BACKENDS = ["numpy", pytest.param("faiss", marks=needs_faiss)]


@pytest.fixture(scope="module")
def pixels(pool_lfw, tmp_path_factory) -> np.ndarray:
    """Flattened 32 px pixels (in [0, 1]) of the 448 real LFW pool faces, N x 3072 float32."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACESSL_CACHE", str(tmp_path_factory.mktemp("search-cache")))
        built = cache.load_or_build(lfw.locate(pool_lfw["folder"]), Preprocessing(128, 32),
                                    quiet=True)
        faces = built.take(pool_lfw["manifest"]["unlabelled"])
    return faces.reshape(len(faces), -1).astype(np.float32) / 255.0


@pytest.fixture
def use(monkeypatch):
    """use("numpy") / use("faiss"): the backend the next calls run on, checked."""
    def choose(name: str) -> None:
        monkeypatch.setenv("FACESSL_NO_FAISS", "1" if name == "numpy" else "0")
        assert search.backend() == name
    return choose


# ---------------------------------------------------------------- which backend runs


def test_no_faiss_flag_takes_the_fallback(pixels, use, monkeypatch):
    def refuse(*args):
        raise AssertionError("the faiss path ran with FACESSL_NO_FAISS=1")
    monkeypatch.setattr(search, "_top_k_faiss", refuse)
    monkeypatch.setattr(search, "_kmeans_faiss", refuse)
    use("numpy")
    rows = l2_normalise(pixels[:100])
    search.top_k(rows, rows, 3, exclude_self=True)
    search.kmeans(rows, 4, seed=0)


@needs_faiss
def test_faiss_runs_when_installed(pixels, monkeypatch):
    monkeypatch.delenv("FACESSL_NO_FAISS", raising=False)
    assert search.backend() == "faiss"
    monkeypatch.setattr(search, "_top_k_numpy", None)  # would fail if called
    rows = l2_normalise(pixels[:100])
    assert search.top_k(rows, rows, 3)[0].shape == (100, 3)


def test_without_faiss_installed_the_fallback_runs(pixels, monkeypatch):
    monkeypatch.delenv("FACESSL_NO_FAISS", raising=False)
    monkeypatch.setattr(search, "_faiss", lambda: None)
    assert search.backend() == "numpy"
    rows = l2_normalise(pixels[:50])
    assert search.top_k(rows, rows, 2)[0].shape == (50, 2)


def test_an_unknown_flag_value_is_refused(monkeypatch):
    monkeypatch.setenv("FACESSL_NO_FAISS", "yes")
    with pytest.raises(FacesslError, match="FACESSL_NO_FAISS must be 1 .* got 'yes'"):
        search.backend()


# ---------------------------------------------------------------- the fallback is unchanged


def test_fallback_kmeans_is_scikit_learns_bit_for_bit(pixels, use):
    use("numpy")
    labels, centres = search.kmeans(pixels, 5, seed=3, n_init=2)
    model = KMeans(n_clusters=5, n_init=2, random_state=3).fit(pixels)
    assert labels.dtype == np.int64
    assert np.array_equal(labels, model.labels_) and np.array_equal(centres,
                                                                    model.cluster_centers_)


@pytest.mark.parametrize("backend", BACKENDS)
def test_top_k_is_the_exact_nearest_neighbours(pixels, use, backend):
    """Against a full sort of every similarity: real faces have no tied similarities."""
    use(backend)
    rows = l2_normalise(pixels)
    queries = rows[::7]
    full = queries @ rows.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :5]
    indices, sims = search.top_k(queries, rows, 5)
    assert indices.dtype == np.int64 and sims.dtype == np.float32
    assert np.array_equal(indices, expected)
    assert np.allclose(sims, np.take_along_axis(full, expected, axis=1), atol=1e-5)


# ---------------------------------------------------------------- faiss agrees


@needs_faiss
def test_faiss_knn_graph_agrees_with_numpy(pixels, use):
    rows = l2_normalise(pixels)
    use("numpy")
    np_i, np_s = search.top_k(rows, rows, 10, exclude_self=True)
    use("faiss")
    fa_i, fa_s = search.top_k(rows, rows, 10, exclude_self=True)
    assert not (fa_i == np.arange(len(rows))[:, None]).any()  # no row is its own neighbour
    assert (fa_i == np_i).mean() >= 0.999  # measured: 1.0 (ties could swap two ranks)
    assert np.allclose(fa_s, np_s, atol=1e-5)


@needs_faiss
def test_faiss_kmeans_agrees_with_scikit_learn(pixels, use):
    """Same seed, same k-means++ start: faiss's clusters of real faces are scikit-learn's
    (AMI measured 1.0 for seeds 0 to 4; scikit-learn with the next seed: 0.47 to 0.59) at an
    objective within 0.1% of it."""
    for seed in range(3):
        use("numpy")
        sk, sk_centres = search.kmeans(pixels, 10, seed)
        use("faiss")
        fa, fa_centres = search.kmeans(pixels, 10, seed)
        assert adjusted_mutual_info_score(sk, fa) > 0.9
        objective = [((pixels - c[lab]) ** 2).sum(dtype=np.float64)
                     for lab, c in ((sk, sk_centres), (fa, fa_centres))]
        assert objective[1] / objective[0] < 1.001


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_finds_well_separated_faces(pixels, use, backend):
    """12 real faces, 20 noisy copies each: both backends find the 12 (faiss's own random
    start merged some of them: AMI 0.82 to 0.96 for seeds 0 to 4)."""
    use(backend)
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(12), 20)
    rows = pixels[rng.choice(len(pixels), 12, replace=False)][truth]
    rows = rows + 0.03 * rng.standard_normal(rows.shape).astype(np.float32)
    labels, centres = search.kmeans(rows, 12, seed=0)
    assert adjusted_mutual_info_score(truth, labels) == pytest.approx(1.0)
    assert centres.shape == (12, pixels.shape[1])
    assert np.array_equal(search.kmeans(rows, 12, seed=0)[0], labels)  # deterministic


@needs_faiss
def test_pixel_pseudo_labels_of_each_backend_are_cached_apart(pixels, use, private_cache):
    images = (pixels[:48].reshape(48, 32, 32, 3) * 255).round().astype(np.uint8)
    found = {}
    for backend in ("numpy", "faiss"):
        use(backend)
        found[backend] = kmeans_pixels.cluster_pixels(images, 3, seed=0, cache_key="pool")[0]
    assert len(list((private_cache / "pseudo-labels").glob("*.npz"))) == 2
    use("numpy")  # the numpy file is still scikit-learn's own answer
    assert np.array_equal(kmeans_pixels.cluster_pixels(images, 3, seed=0, cache_key="pool")[0],
                          found["numpy"])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_says_what_was_wrong(pixels, use, backend):
    use(backend)
    rows = l2_normalise(pixels[:20])
    with pytest.raises(FacesslError, match="k=21 neighbours asked for, but there are only 20"):
        search.top_k(rows, rows, 21)
    with pytest.raises(FacesslError, match="k=20 .* only 19 other rows"):
        search.top_k(rows, rows, 20, exclude_self=True)
    with pytest.raises(FacesslError, match="keys must be a non-empty N x D float array"):
        search.top_k(rows, rows[:0], 1)
    with pytest.raises(FacesslError, match="same width"):
        search.top_k(rows, rows[:, :10], 1)
    with pytest.raises(FacesslError, match="exclude_self needs the queries to be the keys"):
        search.top_k(rows[:5], rows, 1, exclude_self=True)
    with pytest.raises(FacesslError, match="rows must be a non-empty N x D float array"):
        search.kmeans(np.zeros((0, 3), np.float32), 2, seed=0)
    with pytest.raises(FacesslError, match="1 to 20 clusters for 20 rows, got 21"):
        search.kmeans(rows, 21, seed=0)
    with pytest.raises(FacesslError, match="got 0"):
        search.kmeans(rows, 0, seed=0)
    with pytest.raises(FacesslError, match="n_init must be a positive integer"):
        search.kmeans(rows, 2, seed=0, n_init=0)


# ---------------------------------------------------------------- the album's graph


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("bfloat16", [True, False])
def test_the_neighbour_graph_is_the_exact_one(pixels, dtype, bfloat16, monkeypatch):
    """The bfloat16 shortlist scored again exactly (or float32 products, on a CPU without
    bfloat16 units) gives the exact neighbours of real face rows centred as a face space
    centres them (cosines around 0, as in an album)."""
    monkeypatch.setattr(search, "_bfloat16_units", lambda: bfloat16)
    rows = l2_normalise(pixels - pixels.mean(axis=0)).astype(dtype)
    exact = rows.astype(np.float32) @ rows.astype(np.float32).T
    np.fill_diagonal(exact, -np.inf)
    expected = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    indices, cosines = search.neighbour_graph(rows, 10)
    assert indices.shape == (len(rows), 10) and cosines.dtype == np.float32
    same = np.mean([set(a) == set(b) for a, b in zip(indices, expected)])
    assert same >= 0.995, same
    assert np.allclose(cosines, np.take_along_axis(exact, indices, axis=1), atol=1e-5)
    assert (np.diff(cosines, axis=1) <= 0).all()  # most similar first
    few, _ = search.neighbour_graph(rows[:4], 10)  # fewer rows than k: every other row
    assert few.shape == (4, 3) and all(i not in r for i, r in enumerate(few))
