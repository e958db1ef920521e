"""The album track's label propagation, scored for `facessl evaluate`.

From the k labelled photos of each person, labels spread over the community's other,
unlabelled train photos (`space.propagation`); the confident ones join their person's class
mean. How confident is chosen on val, per descriptor space, over every k.
"""

from __future__ import annotations

import numpy as np

from facessl.eval import metrics
from facessl.space.propagation import confident_pseudo_labels, label_propagation

CONFIDENCES = (0.1, 0.2, 0.3, 0.5)  # label-propagation shares tried on val


def propagated_ncm(community, shots: int | None, space, album: np.ndarray
                   ) -> dict[float, dict]:
    """Label propagation from the k labelled photos over the album's other photos; for each
    confidence in `CONFIDENCES`, the album photos at least that sure join their person's
    class mean: {confidence: {"added": n, "val": NCM accuracy, "test": NCM accuracy}}."""
    raw_train, train_y = community.train(shots)
    train_x, album_x = space(raw_train), space(album)
    queries = {name: (space(x), y) for name, (x, y) in
               (("val", community.val), ("test", community.test))}
    pseudo, confidence = label_propagation(train_x, train_y, album_x)
    scores = {}
    for threshold in CONFIDENCES:
        keep, labels = confident_pseudo_labels(pseudo, confidence, threshold)
        x = np.concatenate([train_x, album_x[keep]])
        y = np.concatenate([train_y, labels])
        scores[threshold] = {"added": int(len(keep))} | {
            name: metrics.nearest_class_mean_accuracy(x, y, qx, qy)
            for name, (qx, qy) in queries.items()}
    return scores


def add_propagation(results: dict, propagated: dict[str, dict]) -> None:
    """Per space, the propagation confidence with the best mean val accuracy over the k's;
    its test accuracy joins the table as `<space>+propagation`."""
    for name, by_shots in propagated.items():
        best = max(CONFIDENCES,
                   key=lambda t: np.mean([s[t]["val"] for s in by_shots.values()]))
        results.setdefault("propagation", {})[name] = {
            "confidence": best,
            "val_accuracy_by_confidence": {
                t: float(np.mean([s[t]["val"] for s in by_shots.values()])) for t in CONFIDENCES},
            "test": {label: s[best]["test"] for label, s in by_shots.items()},
            "added": {label: s[best]["added"] for label, s in by_shots.items()}}
        for label, s in by_shots.items():
            accuracy = s[best]["test"]
            results["accuracy"][label][f"{name}+propagation"] = {
                "mean": accuracy, "std": 0.0, "runs": [accuracy]}
