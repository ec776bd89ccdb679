"""Known products: a new photo that is a near-duplicate of a person-labelled one goes where that
one went.

Shops add colour variants, re-shoots and re-uploads of products they have already filed far
more often than wholly new kinds of product. For those, "the category of the labelled product
this image is a near-duplicate of" is right far more often than any classifier is on new kinds,
so it is a second auto-fill rule beside the confidence threshold. Like the threshold, the rule
is measured before it is trusted: leave-one-out over the labelled images (each image's nearest
other labelled image, when similar enough, must carry the same category), and it is enabled
only when the Wilson lower bound of that precision reaches the target.

The labelled embeddings travel with the model version (a small ``.npz``), so the classification
workers can apply the rule with the same backbone that made them.
"""

from __future__ import annotations

import io

import numpy as np

from training.calibration import wilson_lower
from training.validation import NEAR_DUPLICATE_COSINE, SIMILARITY_BLOCK

# Fewer answered images than this and the rule's precision is not measured well enough.
MIN_ANSWERED = 10


def normalised(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity becomes a dot product)."""
    x = np.asarray(embeddings, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def near_duplicate_rule(embeddings: np.ndarray, labels: np.ndarray, *, target: float,
                        cosine: float = NEAR_DUPLICATE_COSINE) -> dict:
    """Measure "take the nearest labelled image's category" on the labelled images themselves.

    Args:
        embeddings: ``(N, D)`` embeddings of the labelled images.
        labels: ``(N,)`` their class indices.
        target: precision the rule must be shown to reach.
        cosine: similarity at or above which two images count as the same product.

    Returns:
        ``{"enabled", "cosine", "answered", "correct", "coverage", "precision",
        "precision_lower_bound"}``: what ``ModelVersion.auto_fill_thresholds["near_duplicate"]``
        stores.
    """
    x = normalised(embeddings)
    labels = np.asarray(labels)
    nearest = np.zeros(len(x), np.int64)
    best = np.full(len(x), -1.0, np.float32)
    for start in range(0, len(x), SIMILARITY_BLOCK):
        sims = x[start:start + SIMILARITY_BLOCK] @ x.T
        rows = np.arange(sims.shape[0])
        sims[rows, rows + start] = -1.0  # never the image itself
        nearest[start:start + len(rows)] = sims.argmax(axis=1)
        best[start:start + len(rows)] = sims[rows, nearest[start:start + len(rows)]]
    answered = best >= cosine
    correct = int((labels[nearest[answered]] == labels[answered]).sum())
    n = int(answered.sum())
    lower = float(wilson_lower(correct, n)) if n else 0.0
    return {"enabled": bool(n >= MIN_ANSWERED and lower >= target), "cosine": cosine,
            "answered": n, "correct": correct,
            "coverage": float(n / len(x)) if len(x) else 0.0,
            "precision": float(correct / n) if n else None,
            "precision_lower_bound": lower}


def reference_bytes(embeddings: np.ndarray, labels: np.ndarray) -> bytes:
    """The labelled embeddings (unit length, float16: half the size, cosine error ~1e-3) and
    their class indices as ``.npz`` bytes, stored with the model version."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, embeddings=normalised(embeddings).astype(np.float16),
                        labels=np.asarray(labels, np.int32))
    return buffer.getvalue()
