"""Group unit rows of a face space into people, leaving the faces it is unsure of alone.

Average linkage: two groups join while the mean cosine between their faces stays above the
threshold, so a group is a set of faces that look alike on average, not a chain of
look-alikes (a kNN-graph variant that joined any two faces' groups chained people together:
pairwise precision 0.18 on lfw62-v1's community photos).

It runs in memory that grows with the faces, not their square. The mean cosine between two
groups is the dot product of their faces' sums over the product of their sizes, so each
group keeps one sum and every merge is scored exactly. Only groups joined by an edge of the
k-nearest-neighbour graph (`space.search.neighbour_graph`: a bfloat16 shortlist scored again
exactly) are candidates: two groups none of whose faces is among the other's nearest
`NEIGHBOURS` have a mean cosine below any useful threshold. Merging the best candidate
first until none reaches the threshold is what SciPy's dense average linkage cut at the
threshold gives (average linkage never merges above an earlier merge), for the groups the
graph connects. A face left in a group of one is "ungrouped" (label -1).

`agreement` asks small groups for more: a mean of few cosines between strangers strays
further from zero than a mean of many, so two groups must clear the threshold by that many
standard errors of such a mean (`facessl group` asks for 1: `config.GroupConfig`). It lifts
a community album's groups and keeps small albums' groups purer, but look-alike strangers
are more alike than random pairs: alone, it leaves an album of one-off strangers glued.

`agreeing` is the strangers' rule: after the linkage, a face stays in its group only if at
least that many of its `VOTERS` nearest faces are in the group too (a share of them: of its
group's other faces, when it has fewer), asked again until nobody leaves. A look-alike
stranger joins a group on its mean, but few of its nearest faces are there; a person's
faces are each other's nearest. With 2 of 5 (`facessl group`'s), 33% of an album of
LFW's pool (mostly one-off strangers) stays grouped instead of 99.8%, and the community
album's BCubed F rises (BENCHMARKS.md, "Strangers stay apart"). Look-alikes that are each
other's nearest faces stay glued: the face model does not tell them apart.
"""

from __future__ import annotations

import heapq

import numpy as np

from facessl.space.search import neighbour_graph

UNGROUPED = -1
NEIGHBOURS = 30  # candidate groups per face: more than a person's faces in most albums
VOTERS = 5  # a grouped face's nearest faces, asked whether it belongs to its group


def cluster_rows(rows: np.ndarray, threshold: float, min_group: int = 2,
                 neighbours: int = NEIGHBOURS, agreement: float = 0.0,
                 agreeing: int = 0) -> np.ndarray:
    """A label per row (unit length, cosine = dot): groups of at least `min_group` faces
    numbered 0, 1, ... largest first; UNGROUPED for the rest.

    `agreement` > 0 keeps look-alike strangers apart: two groups of sizes a and b join only
    if their mean cosine also clears `threshold` by `agreement` standard errors of a mean of
    a x b cosines between strangers (`stranger_spread`): two single faces need a cosine far
    above what strangers reach, large groups little more than `threshold`. `agreeing` > 0:
    a face whose `VOTERS` nearest faces hold fewer than `agreeing` of its group leaves it
    (`belongs`)."""
    n = len(rows)
    if n < max(min_group, 2):
        return np.full(n, UNGROUPED, np.int64)
    # the store's float16 rows stay float16 (half the memory); each group's sum is float32
    rows = np.asarray(rows, np.float16 if rows.dtype == np.float16 else np.float32)
    nearest, cosines = neighbour_graph(rows, neighbours)
    margin = agreement * stranger_spread(rows) if agreement else 0.0
    owner = _average_linkage(rows, nearest, cosines, threshold, margin)
    return numbered(kept_by_neighbours(owner, nearest, agreeing) if agreeing else owner,
                    min_group)


def stranger_spread(rows: np.ndarray, pairs: int = 20_000, seed: int = 0) -> float:
    """The standard deviation of the cosine between two rows drawn at random: in an album of
    many people, nearly always two strangers. Computed a thousand pairs at a time: 20,000
    pairs of face-space rows at once would take a gigabyte."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(len(rows), size=(2, pairs))
    keep = a != b
    a, b = a[keep], b[keep]
    cosines = [np.einsum("ij,ij->i", np.asarray(rows[a[i:i + 1000]], np.float32),
                         np.asarray(rows[b[i:i + 1000]], np.float32))
               for i in range(0, len(a), 1000)]
    return float(np.std(np.concatenate(cosines)))


def clears(mean: float, pairs: int, threshold: float, margin: float) -> bool:
    """Whether two groups whose `pairs` cosines average `mean` may join: `threshold` plus
    `margin` (`agreement` x `stranger_spread`) over the square root of `pairs`."""
    return mean >= threshold + margin / pairs ** 0.5


def belongs(inside: np.ndarray, others: np.ndarray, agreeing: int) -> np.ndarray:
    """Whether a face stays in its group: `inside[:, j]` whether its j-th nearest face is in
    the group (nearest first, `VOTERS` or fewer columns), `others` the group's other faces.
    It needs `agreeing` of `VOTERS` of them, or that share of `others` where fewer."""
    asked = np.minimum(inside.shape[1], others)
    votes = np.cumsum(inside, axis=1)[np.arange(len(inside)), np.maximum(asked, 1) - 1]
    return votes * VOTERS >= agreeing * asked


def kept_by_neighbours(owner: np.ndarray, nearest: np.ndarray, agreeing: int) -> np.ndarray:
    """`owner` (each row's group id) with the faces that do not `belong` to their group left
    on their own, asked again until everyone left belongs: a face that leaves takes its vote
    from the faces it was near. `nearest` holds the first len(nearest) rows' nearest rows:
    the rows past them only vote (a re-run's album)."""
    owner, asked = owner.copy(), len(nearest)
    voters = nearest[:, :VOTERS]
    while True:
        size = np.bincount(owner)[owner[:asked]]
        leave = (size > 1) & ~belongs(owner[voters] == owner[:asked, None], size - 1, agreeing)
        if not leave.any():
            return owner
        owner[:asked][leave] = owner.max() + 1 + np.flatnonzero(leave)  # ids nobody has


def _average_linkage(rows: np.ndarray, nearest: np.ndarray, cosines: np.ndarray,
                     threshold: float, margin: float) -> np.ndarray:
    """Each row's group (the id of a row in it): the best-scoring pair of groups joined by a
    graph edge merges first, while its mean cosine `clears` the bar for their sizes."""
    n = len(rows)
    linked: list[set[int]] = [set() for _ in range(n)]
    for i, (js, sims) in enumerate(zip(nearest, cosines)):
        for j, sim in zip(js.tolist(), sims.tolist()):
            linked[i].add(j)
            linked[j].add(i)
    heap = [(-sim, i, j, 0, 0) for i, (js, sims) in enumerate(zip(nearest, cosines))
            for j, sim in zip(js.tolist(), sims.tolist())
            if i < j and clears(sim, 1, threshold, margin)]
    heapq.heapify(heap)
    sums: dict[int, np.ndarray] = {}  # a group of two or more: the sum of its rows
    size = np.ones(n, np.int64)
    version = np.zeros(n, np.int64)  # a group's score entries older than this are stale
    owner = np.arange(n)  # a merged-away group -> the group it joined
    while heap:
        score, a, b, seen_a, seen_b = heapq.heappop(heap)
        if -score < threshold:
            break
        if owner[a] != a or owner[b] != b or version[a] != seen_a or version[b] != seen_b:
            continue
        if size[a] < size[b]:
            a, b = b, a
        sums[a] = _sum(sums, rows, a) + _sum(sums, rows, b)
        sums.pop(b, None)
        size[a] += size[b]
        owner[b] = a
        version[a] += 1
        linked[a] |= linked[b]
        linked[a] -= {a, b}
        for c in linked[b]:
            linked[c].discard(b)
            if c != a:
                linked[c].add(a)
        linked[b] = set()
        for c in linked[a]:
            pairs = size[a] * size[c]
            mean = float(sums[a] @ _sum(sums, rows, c)) / pairs
            if clears(mean, pairs, threshold, margin):
                heapq.heappush(heap, (-mean, a, c, version[a], version[c]))
    for i in range(n):  # path compression: every row to its group's surviving id
        root = i
        while owner[root] != root:
            root = owner[root]
        owner[i] = root
    return owner


def _sum(sums: dict[int, np.ndarray], rows: np.ndarray, group: int) -> np.ndarray:
    """A group's sum of rows (float32); a single face's row."""
    return sums[group] if group in sums else rows[group].astype(np.float32)


def numbered(labels: np.ndarray, min_group: int) -> np.ndarray:
    """Relabel: groups of at least `min_group` faces as 0, 1, ... by size, groups of one
    size in the order of their first face; others UNGROUPED."""
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = [ids[i] for i in np.lexsort((first, -counts)) if counts[i] >= min_group]
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(v, UNGROUPED) for v in labels], np.int64)
