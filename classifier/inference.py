"""LiteRT inference core: a batch-first image classifier over one ``.tflite`` model (no TF).

A model has one output (logits or probabilities) or two: the logits and the backbone's pooled
image embedding, computed by the same invoke (what similar-product search and duplicate
detection use, at no extra inference cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from classifier.exceptions import ImageError, ModelContractError, ModelLoadError
from classifier.preprocessing import InputContract, decode_images, to_model_input

# 64 images of 224x224x3 float32 are ~38 MB of input tensor: large enough that one invoke
# amortises the interpreter overhead, small enough for a worker sharing 2 cores with the web app.
DEFAULT_MAX_BATCH = 64

# Interpreter threads per instance. Workers run one interpreter each on small machines; more
# threads than cores only adds contention.
DEFAULT_NUM_THREADS = 2

DEFAULT_TOP_K = 3

_TENSOR_DTYPES = {"float32": np.float32, "uint8": np.uint8, "int8": np.int8}


@dataclass(frozen=True)
class Prediction:
    """One image's result: the best label, its probability, and the ``k`` best (label, prob).

    ``embedding`` is the image's float32 backbone embedding when the model exports one.
    """

    label: str
    confidence: float
    top_k: list[tuple[str, float]]
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)


def softmax(logits) -> np.ndarray:
    """Numerically stable softmax over the last axis, returned as float32.

    The row maximum is subtracted before ``exp`` so large logits cannot overflow; the sum is done
    in float64 so rows of many classes still add up to 1.
    """
    values = np.asarray(logits, dtype=np.float64)
    shifted = values - values.max(axis=-1, keepdims=True)
    exps = np.exp(shifted)
    return (exps / exps.sum(axis=-1, keepdims=True)).astype(np.float32)


def top_k(probs: np.ndarray, labels: Sequence[str], k: int = DEFAULT_TOP_K,
          embeddings: np.ndarray | None = None) -> list[Prediction]:
    """The ``k`` most probable labels per row, ties broken by the lower label index.

    A stable argsort is used rather than ``argpartition``: with tied probabilities at the cut,
    argpartition may keep either index, and results must be reproducible.

    Args:
        probs: ``(N, C)`` probabilities (one row per image).
        labels: ``C`` labels in the model's output order.
        k: How many labels to keep; clipped to ``C``.
        embeddings: Optional ``(N, D)`` embeddings, attached to the predictions row by row.

    Returns:
        One :class:`Prediction` per row.

    Raises:
        ValueError: ``k < 1`` or ``C != len(labels)``.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ValueError(f"Expected probabilities of shape (N, {len(labels)}), got {probs.shape}.")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    k = min(k, len(labels))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    predictions = []
    for n, (row, indices) in enumerate(zip(probs, order, strict=True)):
        best = [(labels[i], float(row[i])) for i in indices]
        embedding = None if embeddings is None else embeddings[n]
        predictions.append(Prediction(label=best[0][0], confidence=best[0][1], top_k=best,
                                      embedding=embedding))
    return predictions


class LiteRTClassifier:
    """Classify decoded image batches with one LiteRT interpreter.

    One instance holds one interpreter, which is NOT thread-safe: keep one instance per thread or
    process (workers create it lazily, keyed by model version) and never share it across threads.

    Args:
        model_content: The ``.tflite`` file's bytes.
        labels: Class labels in the model's output order.
        contract: The input contract stored with the model version.
        num_threads: Interpreter threads.
        max_batch: Largest batch per invoke; bigger inputs are split.

    Raises:
        ModelLoadError: The bytes are not a loadable model.
        ModelContractError: The model's tensors do not match ``contract``/``labels``.
    """

    def __init__(
        self,
        model_content: bytes,
        *,
        labels: Sequence[str],
        contract: InputContract,
        num_threads: int = DEFAULT_NUM_THREADS,
        max_batch: int = DEFAULT_MAX_BATCH,
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}.")
        self.labels = tuple(labels)
        self.contract = contract
        self.max_batch = max_batch
        self.invoke_count = 0  # For logs and benchmarks: one invoke per (sub-)batch.
        self._interpreter = _load_interpreter(model_content, num_threads=num_threads)
        input_detail, output_detail, embedding_detail = _model_io(self._interpreter,
                                                                  len(self.labels))
        _check_input(input_detail, contract)
        _check_output(output_detail, self.labels)
        self._input_index = input_detail["index"]
        self._output_index = output_detail["index"]
        self._input_dtype = input_detail["dtype"]
        self._input_quantization = tuple(input_detail["quantization"])
        self._output_quantization = tuple(output_detail["quantization"])
        self._embedding = embedding_detail
        self._batch_size = int(input_detail["shape"][0])

    @property
    def embedding_dim(self) -> int:
        """Width of the model's embedding output, 0 when it exports none."""
        return 0 if self._embedding is None else int(self._embedding["shape"][-1])

    def predict_proba(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Class probabilities for a decoded batch, one invoke per ``max_batch`` images.

        Args:
            batch_uint8: ``(N, height, width, 3)`` ``uint8`` from ``decode_images``.

        Returns:
            ``(N, C)`` float32 probabilities, columns in ``labels`` order.

        Raises:
            ValueError: The batch does not have the contract's shape or dtype.
        """
        return self.predict(batch_uint8)[0]

    def predict(self, batch_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and (when the model has one) embeddings, from the same invokes.

        Returns:
            ``(N, C)`` float32 probabilities and ``(N, D)`` float32 embeddings or ``None``.

        Raises:
            ValueError: The batch does not have the contract's shape or dtype.
        """
        inputs = to_model_input(
            batch_uint8,
            self.contract,
            input_dtype=self._input_dtype,
            quantization=self._input_quantization,
        )
        outputs = [
            self._invoke(inputs[start : start + self.max_batch])
            for start in range(0, len(inputs), self.max_batch)
        ]
        embeddings = None
        if self._embedding is not None:
            embeddings = (np.concatenate([e for _, e in outputs]) if outputs
                          else np.zeros((0, self.embedding_dim), np.float32))
        if not outputs:
            return np.zeros((0, len(self.labels)), dtype=np.float32), embeddings
        raw = _dequantize(np.concatenate([o for o, _ in outputs]), self._output_quantization)
        if self.contract.output == "logits":
            return softmax(raw), embeddings
        return raw.astype(np.float32), embeddings

    def predict_bytes(
        self, items: Sequence[bytes], *, k: int = DEFAULT_TOP_K, **decode_kwargs
    ) -> list[Prediction | ImageError]:
        """Decode and classify encoded images; a bad image yields its error, the rest go on.

        ``decode_kwargs`` go to ``decode_images`` (a caller's stricter limits).

        Returns:
            One entry per item, in order: a :class:`Prediction` or the ``ImageError`` it hit.
        """
        batch, errors = decode_images(items, size=self.contract.size, **decode_kwargs)
        good_rows = [row for row, error in enumerate(errors) if error is None]
        probs, embeddings = self.predict(batch[good_rows])
        predictions = iter(top_k(probs, self.labels, k=k, embeddings=embeddings))
        return [next(predictions) if error is None else error for error in errors]

    def _invoke(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Run one invoke; resize the batch dimension (and reallocate) only when it changes."""
        if len(inputs) != self._batch_size:
            shape = [len(inputs), self.contract.height, self.contract.width, 3]
            try:
                self._interpreter.resize_tensor_input(self._input_index, shape)
                self._interpreter.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                raise ModelContractError(
                    f"The model cannot take a batch of {len(inputs)} ({exc}). Re-export it with a "
                    "dynamic batch dimension (input shape (None, height, width, 3))."
                ) from exc
            self._batch_size = len(inputs)
        self._interpreter.set_tensor(self._input_index, inputs)
        self._interpreter.invoke()
        self.invoke_count += 1
        embedding = None
        if self._embedding is not None:
            embedding = _dequantize(self._interpreter.get_tensor(self._embedding["index"]),
                                    tuple(self._embedding["quantization"]))
        return self._interpreter.get_tensor(self._output_index), embedding


def _load_interpreter(model_content: bytes, *, num_threads: int) -> Interpreter:
    if not model_content:
        raise ModelLoadError("The model file is empty. Re-export the model version.")
    try:
        interpreter = Interpreter(model_content=bytes(model_content), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"The model file ({len(model_content):,} bytes) is not a usable TFLite/LiteRT model "
            f"({exc}). Re-export the model version or activate another one."
        ) from exc
    return interpreter


def _model_io(interpreter: Interpreter, num_labels: int) -> tuple[dict, dict, dict | None]:
    """The input, the class-score output and the optional embedding output.

    Two outputs are told apart by their signature names (``logits``/``embedding``, what the
    training pipeline exports) and, for models converted elsewhere, by width: the class-score
    output has one column per label.
    """
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) not in (1, 2):
        raise ModelContractError(
            f"The model has {len(inputs)} inputs and {len(outputs)} outputs; an image classifier "
            "needs one input and one output (class scores), or two (class scores and an "
            "embedding). Re-export it from the training pipeline."
        )
    if len(outputs) == 1:
        return inputs[0], outputs[0], None
    named = _signature_outputs(interpreter)
    if {"logits", "embedding"} <= named.keys():
        by_index = {d["index"]: d for d in outputs}
        return inputs[0], by_index[named["logits"]], by_index[named["embedding"]]
    scores = [d for d in outputs if int(d["shape"][-1]) == num_labels]
    if len(scores) != 1:
        raise ModelContractError(
            f"The model has two outputs of widths {[int(d['shape'][-1]) for d in outputs]} and "
            f"{num_labels} labels: which one holds the class scores is ambiguous. Re-export it "
            "from the training pipeline (outputs named 'logits' and 'embedding')."
        )
    embedding = next(d for d in outputs if d is not scores[0])
    return inputs[0], scores[0], embedding


def _signature_outputs(interpreter: Interpreter) -> dict[str, int]:
    """Output tensor index by signature name, for the model's single signature (or none)."""
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return {}
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    return {name: detail["index"] for name, detail in runner.get_output_details().items()}


def _check_input(detail: dict, contract: InputContract) -> None:
    shape = tuple(int(v) for v in detail["shape"])
    expected = (contract.height, contract.width, contract.channels)
    if len(shape) != 4 or shape[1:] != expected:
        raise ModelContractError(
            f"The model's input tensor is {shape}, but its stored contract says (N, "
            f"{expected[0]}, {expected[1]}, {expected[2]}). Re-export the model version so model "
            "and contract come from the same training run."
        )
    dtype = np.dtype(detail["dtype"])
    if dtype != np.dtype(_TENSOR_DTYPES[contract.dtype]):
        raise ModelContractError(
            f"The model's input tensor is {dtype}, but its stored contract says "
            f"{contract.dtype}. Re-export the model version."
        )


def _check_output(detail: dict, labels: Sequence[str]) -> None:
    shape = tuple(int(v) for v in detail["shape"])
    if len(shape) != 2 or shape[1] != len(labels):
        raise ModelContractError(
            f"The model outputs {shape} but the model version has {len(labels)} labels. Re-export "
            "the model version so labels and model come from the same training run."
        )
    if np.dtype(detail["dtype"]) not in (np.float32, np.uint8, np.int8):
        raise ModelContractError(
            f"The model's output tensor is {np.dtype(detail['dtype'])}; expected float32, uint8 "
            "or int8. Re-export it from the training pipeline."
        )


def _dequantize(raw: np.ndarray, quantization: tuple[float, int]) -> np.ndarray:
    """Integer outputs back to real values with the tensor's (scale, zero_point)."""
    scale, zero_point = quantization
    if raw.dtype == np.float32 or not scale:
        return raw.astype(np.float32)
    return (raw.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
