import numpy as np
import pytest

from facessl.config import Preprocessing
from facessl.data import cache, lfw
from facessl.data.splits import load_manifest
from facessl.errors import FacesslError
from facessl.eval import metrics as evaluate
from facessl.space import propagation


def _blobs(centres: np.ndarray, per_class: int, noise: float, seed: int = 0):
    """Rows scattered around each centre; labels are the centre's index."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + noise * rng.standard_normal((per_class, len(c))) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(len(centres)), per_class)


def _reference_knn(train_x, train_y, test_x, k):
    """The plain loop kNN: sort by cosine, count votes, break ties by the nearest member."""
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    predictions = []
    for q in test_x:
        sims = [float(unit(q) @ unit(t)) for t in train_x]
        ranked = [train_y[i] for i in sorted(range(len(sims)), key=lambda i: -sims[i])[:k]]
        counts = {c: ranked.count(c) for c in ranked}
        best = max(counts.values())
        predictions.append(next(c for c in ranked if counts[c] == best))
    return np.array(predictions)


# ---------------------------------------------------------------- kNN and class means


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
def test_knn_matches_a_plain_loop(k):
    rng = np.random.default_rng(k)
    train_x, test_x = rng.standard_normal((40, 6)), rng.standard_normal((30, 6))
    train_y = rng.integers(0, 5, size=40) * 10  # labels need not be 0..C-1
    predicted, nearest = evaluate.knn_predict(train_x, train_y, test_x, k=k)
    assert np.array_equal(predicted, _reference_knn(train_x, train_y, test_x, k))
    unit = evaluate.l2_normalise
    assert np.allclose(nearest, (unit(test_x) @ unit(train_x).T).max(axis=1), atol=1e-6)


def test_knn_tie_goes_to_the_class_of_the_nearest_neighbour():
    train_x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    train_y = np.array([0, 1, 1, 0])
    near_class_1 = np.array([[0.92, 0.1]])  # ranks: train 1 (class 1), train 0 (class 0), ...
    assert evaluate.knn_predict(train_x, train_y, near_class_1, k=2)[0][0] == 1
    assert evaluate.knn_predict(train_x, train_y, near_class_1, k=4)[0][0] == 1
    assert evaluate.knn_predict(train_x, train_y, np.array([[1.0, 0.01]]), k=4)[0][0] == 0


def test_well_separated_people_are_all_recognised():
    centres = 5 * np.eye(8)[:4]
    train_x, train_y = _blobs(centres, 5, noise=0.3, seed=1)
    test_x, test_y = _blobs(centres, 10, noise=0.3, seed=2)
    assert evaluate.knn_accuracy(train_x, train_y, test_x, test_y, k=3) == 1.0
    assert evaluate.nearest_class_mean_accuracy(train_x, train_y, test_x, test_y) == 1.0
    assert evaluate.linear_probe_accuracy(train_x, train_y, test_x, test_y) == 1.0
    assert evaluate.pixel_1nn_accuracy(train_x, train_y, test_x, test_y) == 1.0
    assert evaluate.chance_accuracy(test_y) == 0.25


def test_class_means_average_unit_rows_not_raw_rows():
    # Class 0: one long row along x, one short along y; its mean direction is the diagonal.
    # The raw mean (50, 0.5) would point along x and lose to class 1.
    train_x = np.array([[100.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    train_y = np.array([0, 0, 1])
    query = np.array([[1.0, 1.2]])
    predicted, sim = evaluate.nearest_class_mean_predict(train_x, train_y, query)
    assert predicted[0] == 0
    assert sim[0] == pytest.approx((1.0 + 1.2) / (np.hypot(1.0, 1.2) * np.sqrt(2)), abs=1e-6)
    classes, means = evaluate.class_means(train_x, train_y)
    assert np.array_equal(classes, [0, 1])
    assert np.allclose(means, [[0.5 ** 0.5, 0.5 ** 0.5], [0.0, 1.0]], atol=1e-6)


def test_class_means_at_one_shot_is_cosine_1nn():
    rng = np.random.default_rng(3)
    train_x, test_x = rng.standard_normal((6, 5)), rng.standard_normal((40, 5))
    train_y = np.arange(6)
    assert np.array_equal(evaluate.nearest_class_mean_predict(train_x, train_y, test_x)[0],
                          evaluate.knn_predict(train_x, train_y, test_x, k=1)[0])


def test_linear_probe_standardises_features_of_any_scale():
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], 40)
    signal = (2 * y - 1 + 0.3 * rng.standard_normal(80)) * 1e-3  # tiny but informative
    noise = 1e3 * rng.standard_normal(80)  # huge but useless
    x = np.stack([signal, noise], axis=1)
    probe = evaluate.linear_probe(x[::2], y[::2])
    assert probe.predict_proba(x[1::2]).shape == (40, 2)
    assert evaluate.linear_probe_accuracy(x[::2], y[::2], x[1::2], y[1::2]) >= 0.95


def test_pixel_1nn_is_euclidean_on_pixels():
    bright, dark = np.full((1, 1, 4, 4), 200, np.uint8), np.full((1, 1, 4, 4), 20, np.uint8)
    train = np.concatenate([bright, dark])
    # Cosine cannot tell flat images apart; Euclidean distance can.
    assert evaluate.pixel_1nn_accuracy(train, np.array([0, 1]),
                                       np.full((1, 1, 4, 4), 30, np.uint8), np.array([1])) == 1.0


def test_misuse_and_bad_requests_are_refused():
    x, y = np.eye(3), np.arange(3)
    with pytest.raises(FacesslError, match=r"k=5 neighbours .* only 3 .* Pass k=3 or fewer"):
        evaluate.knn_predict(x, y, x, k=5)
    with pytest.raises(FacesslError, match="train_y must be 3 integer labels"):
        evaluate.knn_predict(x, y[:2], x)
    with pytest.raises(FacesslError, match="same width"):
        evaluate.nearest_class_mean_predict(x, y, np.eye(4))
    with pytest.raises(FacesslError, match=r"n_components=150 .* pool has 3 images .* "
                                            r"Pass n_components=2 or fewer"):
        evaluate.eigenfaces_svm_accuracy(x, x, y, x, y)


# ---------------------------------------------------------------- baselines on real faces


def test_pixel_baselines_beat_chance_on_real_faces(tiny_lfw):
    split = load_manifest(tiny_lfw["split"])
    images = cache.load_or_build(lfw.locate(tiny_lfw["folder"]), Preprocessing(128, 32),
                                 quiet=True)
    train_paths, train_y = split.labelled("train", shots=6)
    held_out = [split.labelled(role) for role in ("test", "val")]
    test_paths, test_y = held_out[0][0] + held_out[1][0], held_out[0][1] + held_out[1][1]
    train, test = images.take(train_paths), images.take(test_paths)
    train_y, test_y = np.array(train_y), np.array(test_y)
    pool = images.take(split.unlabelled)
    chance = evaluate.chance_accuracy(test_y)
    assert chance == pytest.approx(1 / 3)
    assert evaluate.pixel_1nn_accuracy(train, train_y, test, test_y) > chance
    eigen = evaluate.eigenfaces_svm_accuracy(pool, train, train_y, test, test_y,
                                             n_components=20)
    assert eigen > chance


# ---------------------------------------------------------------- label propagation


def test_label_propagation_labels_two_blobs_from_one_face_each():
    centres = np.eye(16)[:3] * 4
    x, y = _blobs(centres, 30, noise=0.4, seed=5)
    labelled = np.array([0, 30])  # one face of blob 0 and one of blob 1; blob 2 has none
    rest = np.setdiff1d(np.arange(len(x)), labelled)
    labels, confidence = propagation.label_propagation(x[labelled], y[labelled], x[rest], k=10)
    in_blobs = y[rest] < 2
    assert np.array_equal(labels[in_blobs], y[rest][in_blobs])
    assert confidence[in_blobs].min() > 0.99
    assert np.all(confidence[~in_blobs] == 0)  # no label reaches the unlabelled blob
    keep, kept_labels = propagation.confident_pseudo_labels(labels, confidence, threshold=0.0)
    assert np.array_equal(keep, np.flatnonzero(in_blobs))
    assert np.array_equal(kept_labels, y[rest][in_blobs])


def test_label_propagation_follows_a_chain_where_1nn_fails():
    # Two arcs of the unit circle: person 0 from 0 to 80 degrees, person 1 from 100 to 180.
    # The end of arc 0 is nearer to person 1's only labelled face than to person 0's.
    angles = np.radians(np.concatenate([np.arange(0, 81, 2), np.arange(100, 181, 2)]))
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    y = (angles > np.radians(90)).astype(np.int64)
    labelled = np.array([0, 41])  # 0 and 100 degrees
    rest = np.setdiff1d(np.arange(len(x)), labelled)
    nn = evaluate.knn_predict(x[labelled], y[labelled], x[rest], k=1)[0]
    assert (nn != y[rest]).sum() > 0
    labels, confidence = propagation.label_propagation(x[labelled], y[labelled], x[rest], k=4,
                                                    iterations=30)
    assert np.array_equal(labels, y[rest])


def test_an_atypical_labelled_photo_still_labels_its_person():
    # The labelled photos sit off their blobs: no blob member counts them among its nearest
    # neighbours, but they count blob members among theirs. The graph must be symmetric
    # for their labels to flow into the blobs.
    x, y = _blobs(np.eye(8)[:2] * 4, 20, noise=0.05, seed=6)
    labelled_x = np.array([[1.0, 0.0, 0.6] + [0.0] * 5, [0.0, 1.0, 0.0, 0.6] + [0.0] * 4])
    labels, confidence = propagation.label_propagation(labelled_x, np.array([0, 1]), x, k=5)
    assert np.array_equal(labels, y) and confidence.min() > 0.99


def test_confident_pseudo_labels_apply_the_threshold():
    labels, confidence = np.array([3, 1, 2, 0]), np.array([0.95, 0.5, 0.9, 0.0])
    keep, kept = propagation.confident_pseudo_labels(labels, confidence, threshold=0.9)
    assert keep.tolist() == [0, 2] and kept.tolist() == [3, 2]
    with pytest.raises(FacesslError, match="threshold"):
        propagation.confident_pseudo_labels(labels, confidence, threshold=1.5)


# ---------------------------------------------------------------- over seeds


def test_summarise_seeds():
    mean, std = evaluate.summarise_seeds([0.5, 0.7, 0.9])
    assert mean == pytest.approx(0.7) and std == pytest.approx(0.2)
    assert evaluate.summarise_seeds([0.4]) == (0.4, 0.0)
    with pytest.raises(FacesslError):
        evaluate.summarise_seeds([])
