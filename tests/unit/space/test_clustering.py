"""Average linkage over the k-nearest-neighbour graph: the dense method's groups, in memory
that grows with the faces, on rows shaped like a face space's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

from facessl.space.clustering import (
    UNGROUPED,
    cluster_rows,
    kept_by_neighbours,
    numbered,
)


def _people(count: int, faces: int, dim: int = 64, spread: float = 1.2, seed: int = 0,
            strangers: int = 0) -> np.ndarray:
    """Unit rows: `count` people of `faces` faces each around their own direction, and
    `strangers` faces of nobody else; whitened face rows look like this (near-orthogonal
    people, faces of one person a modest cosine apart)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count, dim))
    rows = np.concatenate([np.repeat(centres, faces, axis=0) * 0.5
                           + spread * rng.normal(size=(count * faces, dim)),
                           rng.normal(size=(strangers, dim))])
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _dense(rows: np.ndarray, threshold: float) -> np.ndarray:
    """SciPy's average linkage on every pair, cut at `threshold`: the reference."""
    distance = 1.0 - rows.astype(np.float64) @ rows.T.astype(np.float64)
    condensed = np.clip(distance[np.triu_indices(len(rows), 1)], 0, None)
    return numbered(fcluster(linkage(condensed, method="average"), 1 - threshold,
                             criterion="distance"), 2)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = {(x, y) for x, y in zip(a.tolist(), b.tolist())}
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("threshold", [0.05, 0.1, 0.2])
def test_on_the_complete_graph_it_is_scipys_average_linkage(threshold):
    rows = _people(12, 6, strangers=10, seed=1)
    ours = cluster_rows(rows, threshold, neighbours=len(rows) - 1)
    assert _same_partition(ours, _dense(rows, threshold))


def test_thirty_neighbours_find_the_groups_the_dense_method_finds():
    rows = _people(40, 8, strangers=200, seed=2)
    ours, dense = cluster_rows(rows, 0.1), _dense(rows, 0.1)
    agree = np.mean([ours[i] == ours[j] for i, j in zip(*np.triu_indices(len(rows), 1))
                     if dense[i] == dense[j] and dense[i] != UNGROUPED])
    assert agree >= 0.99  # pairs the dense method groups, grouped here too


def test_each_person_is_one_group_and_people_are_not_glued_together():
    rows = _people(5, 10, dim=1024, seed=3)
    labels = cluster_rows(rows, 0.1)
    for person in range(5):
        mine = labels[person * 10:(person + 1) * 10]
        assert len(set(mine.tolist())) == 1 and mine[0] != UNGROUPED
    assert len(set(labels.tolist())) == 5


def test_tiny_inputs():
    assert cluster_rows(np.zeros((0, 4), np.float32), 0.1).tolist() == []
    assert cluster_rows(_people(1, 1), 0.1).tolist() == [UNGROUPED]
    two = _people(1, 2, spread=0.01)
    assert cluster_rows(two, 0.1).tolist() == [0, 0]


def test_with_agreement_strangers_stay_ungrouped_and_people_stay_whole():
    """Look-alike strangers (random rows: their best pairs reach 4 standard deviations)
    are glued without `agreement` and stay apart with it; each person stays one group."""
    rows = _people(5, 10, dim=1024, spread=0.8, strangers=300, seed=4)
    glued = cluster_rows(rows, 0.05)
    apart = cluster_rows(rows, 0.05, agreement=3.0)
    assert np.sum(glued[50:] != UNGROUPED) > 0
    assert np.all(apart[50:] == UNGROUPED)
    for person in range(5):
        mine = apart[person * 10:(person + 1) * 10]
        assert len(set(mine.tolist())) == 1 and mine[0] != UNGROUPED


def test_a_face_its_nearest_faces_outvote_leaves_its_group_and_so_may_its_partner():
    """Faces 0-5 one group, 6-7 a pair, 8-9 alone. Face 5 has one of its 5 nearest faces
    in its group (2 needed): it leaves. Face 7's nearest is not its partner: it leaves,
    and face 6, left alone, is ungrouped too. Face 4 has 2 of 5: it stays."""
    owner = np.array([0, 0, 0, 0, 0, 0, 6, 6, 8, 9])
    nearest = np.array([[1, 2, 3, 4, 5], [0, 2, 3, 4, 5], [0, 1, 3, 4, 5], [0, 1, 2, 4, 5],
                        [0, 6, 7, 1, 8], [6, 7, 8, 9, 0], [7, 0, 1, 2, 3], [8, 6, 0, 1, 2],
                        [9, 0, 1, 2, 3], [8, 0, 1, 2, 3]])
    labels = numbered(kept_by_neighbours(owner, nearest, agreeing=2), 2)
    assert labels.tolist() == [0, 0, 0, 0, 0] + [UNGROUPED] * 5
    assert numbered(kept_by_neighbours(owner, nearest, agreeing=0), 2).tolist() == \
        [0] * 6 + [1, 1, UNGROUPED, UNGROUPED]


def test_glued_strangers_whose_nearest_faces_disagree_leave_and_people_stay_whole():
    """At a low threshold with agreement 1, random strangers are glued into groups as LFW's
    one-off strangers are (293 of 300 here); asking each face's 5 nearest faces leaves
    most of them alone and every person's group whole."""
    rows = _people(8, 10, dim=256, spread=0.8, strangers=300, seed=5)
    glued = cluster_rows(rows, 0.05, agreement=1.0)
    apart = cluster_rows(rows, 0.05, agreement=1.0, agreeing=2)
    assert np.sum(glued[80:] != UNGROUPED) >= 270
    assert np.sum(apart[80:] != UNGROUPED) <= 100
    for person in range(8):
        mine = apart[person * 10:(person + 1) * 10]
        assert len(set(mine.tolist())) == 1 and mine[0] != UNGROUPED
