"""A model version's labelled embeddings, and the near-duplicate rule that uses them.

Written by training (``training/references.py``: what the rule is and how it is measured);
read here, TensorFlow-free, by the classification workers: a new image whose embedding is a
near-duplicate of a person-labelled product's may be filed like that product.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from classifier.exceptions import ModelLoadError

# Rows of the reference matrix compared per step (memory: vectors x BLOCK floats).
BLOCK = 8192


@dataclass(frozen=True)
class ReferenceSet:
    """Unit-length embeddings ``(N, D)`` and their class indices ``(N,)``."""

    embeddings: np.ndarray
    labels: np.ndarray

    def nearest(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of and cosine to the most similar reference of each vector."""
        x = np.asarray(vectors, np.float32)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        best = np.full(len(x), -2.0, np.float32)
        index = np.zeros(len(x), np.int64)
        for start in range(0, len(self.embeddings), BLOCK):
            sims = x @ self.embeddings[start:start + BLOCK].T
            top = sims.argmax(axis=1)
            value = sims[np.arange(len(x)), top]
            better = value > best
            best[better], index[better] = value[better], top[better] + start
        return index, best


def load_reference_set(data: bytes, *, dim: int, num_labels: int | None = None
                       ) -> ReferenceSet:
    """Parse the ``.npz`` training stored.

    Raises:
        ModelLoadError: the file is not a reference set of this model's embedding width (or,
            given ``num_labels``, names a label the model does not have).
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            embeddings = archive["embeddings"].astype(np.float32)
            labels = archive["labels"].astype(np.int64)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"The model version's labelled embeddings cannot be read ({exc}). "
                             "Retrain to store them again.") from exc
    if embeddings.ndim != 2 or embeddings.shape[1] != dim or len(labels) != len(embeddings):
        raise ModelLoadError(f"The labelled embeddings have shape {embeddings.shape}, not "
                             f"(N, {dim}). Retrain to store them again.")
    if num_labels is not None and len(labels) and (labels.min() < 0
                                                   or labels.max() >= num_labels):
        raise ModelLoadError(f"The labelled embeddings name labels outside the model's "
                             f"{num_labels}. Retrain to store them again.")
    return ReferenceSet(embeddings=embeddings, labels=labels)


def near_duplicate_matches(references: ReferenceSet, vectors: np.ndarray,
                           label_names: list[str], *, cosine: float) -> list[str | None]:
    """For each vector, the category of its near-duplicate reference, or ``None``."""
    if not len(vectors):
        return []
    index, sims = references.nearest(vectors)
    return [label_names[references.labels[i]] if s >= cosine else None
            for i, s in zip(index, sims)]
