"""The classification head on frozen embeddings: softmax regression trained in NumPy.

With a frozen pretrained backbone the only trainable part is one dense layer over the pooled
embedding. Training it on cached embeddings in NumPy takes well under a second for thousands of
images, is bit-for-bit reproducible for a seed, and makes k-fold validation and hyperparameter
selection cheap. The trained head is folded into the exported Keras/TFLite model afterwards
(``HeadWeights.folded``), so inference runs one graph: backbone, pooling, dense.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from training.dataset import class_weights

# Feature standardisation floor, relative to the median feature's spread. Pooled ReLU6 features
# include near-constant channels; dividing by their tiny spread would multiply their noise, and
# once standardisation is folded into the exported dense layer, give a few kernel rows weights
# thousands of times larger than the rest, which int8 weight quantisation cannot represent.
MIN_RELATIVE_STD = 0.1
# Adam's defaults (Kingma & Ba); the learning rate is a hyperparameter.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8


@dataclasses.dataclass(frozen=True)
class HeadParams:
    """How one head is trained. ``epochs`` is chosen by cross-validation, see validation.py.

    Attributes:
        l2: weight decay on the dense kernel (standardised features, so one scale fits all).
        dropout: rate of input dropout on the embedding during training.
        label_smoothing: mass spread over all classes in the targets (keeps weights finite on
            separable data; temperature scaling undoes its effect on confidence afterwards).
        learning_rate: Adam step size.
        batch_size: examples per step (capped at the training-set size).
        epochs: passes over the training set.
        balanced: weight examples ``n / (k * count_c)`` so rare categories count as much.
    """

    l2: float = 1e-3
    dropout: float = 0.2
    label_smoothing: float = 0.1
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 60
    balanced: bool = True


@dataclasses.dataclass(frozen=True)
class HeadWeights:
    """A trained head: standardisation statistics, kernel ``(D, C)`` and bias ``(C,)``."""

    mean: np.ndarray
    std: np.ndarray
    kernel: np.ndarray
    bias: np.ndarray

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """``(N, C)`` logits for raw (unstandardised) embeddings."""
        x = (np.asarray(embeddings, np.float32) - self.mean) / self.std
        return x @ self.kernel + self.bias

    def folded(self, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Kernel and bias acting on raw embeddings, with standardisation and temperature
        folded in: ``raw @ K + b == logits(raw) / temperature`` exactly (up to rounding)."""
        kernel = self.kernel / self.std[:, None]
        bias = self.bias - (self.mean / self.std) @ self.kernel
        return (kernel / temperature).astype(np.float32), (bias / temperature).astype(np.float32)


def fit_head(embeddings: np.ndarray, labels: np.ndarray, num_classes: int, params: HeadParams,
             *, seed: int, eval_embeddings: np.ndarray | None = None,
             eval_every: int = 0) -> tuple[HeadWeights, list[np.ndarray]]:
    """Train a softmax-regression head with mini-batch Adam.

    Args:
        embeddings: ``(N, D)`` training embeddings.
        labels: ``(N,)`` class indices in ``[0, num_classes)``.
        num_classes: width of the output.
        params: the training recipe.
        seed: seeds shuffling, dropout and nothing else (weights start at zero: softmax
            regression is convex, so the start does not matter and zero is reproducible).
        eval_embeddings: optional held-out embeddings whose logits are recorded during training.
        eval_every: record held-out logits every this many epochs (0: never); the list then
            holds the logits after epochs ``eval_every, 2 * eval_every, ...``.

    Returns:
        The trained head and the recorded held-out logits (empty without ``eval_embeddings``).
    """
    x_raw = np.asarray(embeddings, np.float32)
    y = np.asarray(labels, np.int64)
    mean = x_raw.mean(axis=0)
    spread = x_raw.std(axis=0)
    std = np.maximum(spread, max(MIN_RELATIVE_STD * float(np.median(spread)), 1e-6))
    x = (x_raw - mean) / std
    targets = _smoothed_targets(y, num_classes, params.label_smoothing)
    weights = _example_weights(y, num_classes, params.balanced)
    kernel = np.zeros((x.shape[1], num_classes), np.float32)
    bias = np.zeros(num_classes, np.float32)
    adam = _Adam([kernel, bias], params.learning_rate)
    rng = np.random.default_rng(seed)
    batch = max(1, min(params.batch_size, len(x)))
    x_eval = None if eval_embeddings is None else (np.asarray(eval_embeddings, np.float32)
                                                    - mean) / std
    recorded: list[np.ndarray] = []
    for epoch in range(1, params.epochs + 1):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            xb = _dropout(x[idx], params.dropout, rng)
            grad_k, grad_b = _gradients(xb, targets[idx], weights[idx], kernel, bias, params.l2)
            adam.step([grad_k, grad_b])
        if x_eval is not None and eval_every and epoch % eval_every == 0:
            recorded.append(x_eval @ kernel + bias)
    return HeadWeights(mean=mean, std=std, kernel=kernel, bias=bias), recorded


def _smoothed_targets(y: np.ndarray, num_classes: int, smoothing: float) -> np.ndarray:
    targets = np.full((len(y), num_classes), smoothing / num_classes, np.float32)
    targets[np.arange(len(y)), y] += 1.0 - smoothing
    return targets


def _example_weights(y: np.ndarray, num_classes: int, balanced: bool) -> np.ndarray:
    if not balanced:
        return np.ones(len(y), np.float32)
    lut = class_weights(y, num_classes)
    return np.array([lut[int(c)] for c in y], np.float32)


def _dropout(x: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    if rate <= 0:
        return x
    keep = rng.random(x.shape, dtype=np.float32) >= rate
    return x * keep / np.float32(1.0 - rate)


def _gradients(x: np.ndarray, targets: np.ndarray, weights: np.ndarray, kernel: np.ndarray,
               bias: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the weighted cross-entropy (mean over the batch's weight) plus L2."""
    logits = x @ kernel + bias
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    delta = (probs - targets) * (weights / weights.sum())[:, None]
    return x.T @ delta + l2 * kernel, delta.sum(axis=0)


class _Adam:
    """Adam over a list of arrays updated in place."""

    def __init__(self, params: list[np.ndarray], learning_rate: float) -> None:
        self.params = params
        self.lr = learning_rate
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        b1, b2 = ADAM_BETAS
        correction = np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= (self.lr * correction * m / (np.sqrt(v) + ADAM_EPSILON)).astype(p.dtype)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (what the metrics and calibration work on)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels (natural log)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(z)), np.asarray(labels)]))
