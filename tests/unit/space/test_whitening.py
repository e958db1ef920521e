"""PCA whitening (space/whitening.py) against a plain SVD reference written here in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from facessl.space.whitening import PIECE, Whitening


def _rows(n: int, d: int, seed: int) -> np.ndarray:
    """N x D float32 rows with very unequal spreads per direction and an offset."""
    rng = np.random.default_rng(seed)
    mixing = np.linalg.qr(rng.normal(size=(d, d)))[0]  # directions not on the axes
    spread = np.geomspace(5.0, 0.05, d)
    return (rng.normal(size=(n, d)) * spread @ mixing + 3.0).astype(np.float32)


def _reference(rows: np.ndarray, shrink: float):
    """(mean, components, scale) from an SVD of the centred rows."""
    x = rows.astype(np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    keep = s ** 2 > (s ** 2).max() * 1e-9
    variance = s[keep] ** 2 / (len(x) - 1)
    scale = 1 / np.sqrt(variance + shrink * variance.mean())
    return mean, vt[keep], scale


def _whiten(reference, x: np.ndarray) -> np.ndarray:
    mean, components, scale = reference
    z = (x.astype(np.float64) - mean) @ components.T * scale
    return z / np.linalg.norm(z, axis=1, keepdims=True)


@pytest.mark.parametrize("shrink", [0.0, 0.01, 1.0])
@pytest.mark.parametrize("n, d", [(20, 64), (200, 16), (2 * PIECE + 5, 16)],
                         ids=["gram-path", "plain-path", "summed-in-pieces"])
def test_whitening_equals_an_svd_reference(n, d, shrink):
    rows, held = _rows(n, d, seed=n), _rows(30, d, seed=n + 1)
    fitted = Whitening.fit(rows, shrink)
    reference = _reference(rows, shrink)
    k = len(reference[2])
    assert k == (n - 1 if n <= d else d)  # centring removes one direction when N <= D
    assert fitted.components.shape == (k, d) and fitted.scale.shape == (k,)
    assert np.allclose(fitted.mean, reference[0], atol=1e-5)
    # the same scales, in whatever order the directions come out
    assert np.allclose(np.sort(fitted.scale), np.sort(reference[2]), rtol=1e-4)
    got, want = fitted(held), _whiten(reference, held)
    assert got.shape == (30, k) and np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    # the map agrees up to the order and sign of the directions: same cosines between faces
    assert np.allclose(got @ got.T, want @ want.T, atol=1e-4)
    train_got, train_want = fitted(rows), _whiten(reference, rows)
    assert np.allclose(train_got @ train_got.T, train_want @ train_want.T, atol=1e-4)
    # and direction by direction, once matched up by their (distinct) scales
    order_got, order_want = np.argsort(fitted.scale), np.argsort(reference[2])
    assert np.allclose(np.abs(got[:, order_got]), np.abs(want[:, order_want]), atol=1e-4)


@pytest.mark.parametrize("n, d", [(20, 64), (200, 16)], ids=["gram-path", "plain-path"])
def test_whitened_training_rows_have_unit_variance_before_normalising(n, d):
    rows = _rows(n, d, seed=7)
    fitted = Whitening.fit(rows, shrink=0.0)
    z = (rows - fitted.mean) @ fitted.components.T * fitted.scale
    k = len(fitted.scale)
    assert np.allclose(np.cov(z, rowvar=False), np.eye(k), atol=1e-3)  # white: cov = I
    assert np.allclose(fitted.components @ fitted.components.T, np.eye(k), atol=1e-4)
    # shrink > 0 pulls each direction's variance under 1 by var / (var + shrink * mean var)
    shrunk = Whitening.fit(rows, shrink=1.0)
    z = (rows - shrunk.mean) @ shrunk.components.T * shrunk.scale
    variance = np.var(z, axis=0, ddof=1)
    assert np.all(variance < 1) and np.all(variance > 0)
    raw = 1 / fitted.scale ** 2  # each direction's own variance
    ours = np.sort(variance)
    assert np.allclose(ours, np.sort(raw / (raw + raw.mean())), rtol=1e-3)


def test_fewer_rows_than_dimensions_whiten_into_equally_spaced_unit_rows():
    """With N <= D and no shrink the N centred training rows span N - 1 directions, and
    whitened to unit length they are a regular simplex: every cosine is -1 / (N - 1)."""
    n = 12
    rows = _rows(n, 50, seed=3)
    unit = Whitening.fit(rows, shrink=0.0)(rows)
    expected = np.full((n, n), -1 / (n - 1))
    np.fill_diagonal(expected, 1.0)
    assert np.allclose(unit @ unit.T, expected, atol=1e-4)
    # shrinking keeps the big directions' say: the rows are no longer equally spaced
    shrunk = Whitening.fit(rows, shrink=1.0)(rows)
    assert not np.allclose(shrunk @ shrunk.T, expected, atol=1e-2)


def test_whitening_takes_float64_rows():
    rows = np.random.default_rng(0).random((10, 20))
    whiten = Whitening.fit(rows, 0.0)
    assert np.allclose(whiten(rows), whiten(rows.astype(np.float32)), atol=1e-6)


def test_compact_whitening_keeps_the_largest_directions_and_one_scale_for_the_rest():
    rows, held = _rows(200, 16, seed=3), _rows(30, 16, seed=4)
    mean, components, scale = _reference(rows, 1.0)
    compact = Whitening.fit(rows, 1.0, components=4)
    assert compact.components.shape == (4, 16) and compact.residual_scale > 0
    x = held.astype(np.float64) - mean
    top = x @ components[:4].T * scale[:4]  # the SVD orders directions largest first
    rest = (x - x @ components[:4].T @ components[:4]) * compact.residual_scale
    expected = np.hstack([top, rest])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = compact(held)
    assert got.shape == (30, 4 + 16)
    # kept directions come smallest first and with arbitrary signs; the rest is exact
    assert np.allclose(np.abs(got[:, 3::-1]), np.abs(expected[:, :4]), atol=1e-4)
    assert np.allclose(got[:, 4:], expected[:, 4:], atol=1e-4)
    assert np.allclose(got @ got.T, expected @ expected.T, atol=1e-4)
    # the dropped directions' mean variance, regularised like the kept ones, sets their scale
    variance = np.linalg.svd(rows - rows.mean(0), compute_uv=False) ** 2 / 199
    assert compact.residual_scale == pytest.approx(
        1 / np.sqrt(variance[4:].sum() / 12 + variance.mean()), rel=1e-3)


def test_asking_for_more_components_than_there_are_is_the_full_whitening():
    rows = _rows(20, 64, seed=5)
    full, compact = Whitening.fit(rows, 0.01), Whitening.fit(rows, 0.01, components=500)
    assert compact.residual_scale == 0 and np.allclose(compact(rows), full(rows), atol=1e-6)


def test_whitening_survives_its_tensor_form():
    fitted = Whitening.fit(_rows(200, 16, seed=6), 1.0, components=4)
    again = Whitening.from_tensors(fitted.tensors("space."), "space.")
    held = _rows(10, 16, seed=7)
    assert again.residual_scale == pytest.approx(fitted.residual_scale)
    assert np.allclose(again(held), fitted(held), atol=1e-3)  # components stored as float16


@pytest.mark.parametrize("n, d", [(40, 64), (2 * PIECE + 5, 16)], ids=["gram-path", "pieces"])
def test_an_index_fits_on_those_rows_without_copying_them_first(n, d):
    """A face space fits on its rows less the held-out strangers by index: the same
    whitening as on those rows copied out, and not the one of every row."""
    rows = _rows(n, d, seed=3)
    index = np.sort(np.random.default_rng(0).choice(n, n * 3 // 4, replace=False))
    by_index, copied = Whitening.fit(rows, 1.0, index=index), Whitening.fit(rows[index], 1.0)
    assert np.allclose(by_index.mean, copied.mean, atol=1e-5)
    assert np.allclose(by_index.scale, copied.scale, rtol=1e-4)
    assert not np.allclose(Whitening.fit(rows, 1.0).mean, copied.mean, atol=1e-3)
