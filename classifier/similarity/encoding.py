"""Compact bytes for one image embedding: L2-normalised float16 or int8 with a per-vector scale."""

from __future__ import annotations

import struct

import numpy as np

from classifier.exceptions import EmbeddingFormatError

# Each encoded embedding starts with a 4-byte header: a 2-byte codec tag and the dimension count
# (uint16, little-endian), so bytes read back years later (or from another backbone with another
# width) are decoded the way they were written, never reinterpreted.
_HEADER = struct.Struct("<2sH")
# float16 keeps ~3 significant digits: cosine scores move by < 1e-3, recall@10 is unchanged in
# bench/similar_index.py. 2 bytes per dimension (EfficientNet-Lite0: 1280 dims -> 2,564 bytes).
CODEC_FLOAT16 = "f16"
# int8 with one float32 scale per vector (max |value| -> 127): half the size of float16
# (1280 dims -> 1,288 bytes) for a small recall cost measured in bench/similar_index.py.
CODEC_INT8 = "i8"
_TAGS = {CODEC_FLOAT16: b"F2", CODEC_INT8: b"I1"}
_CODECS = {tag: codec for codec, tag in _TAGS.items()}
_SCALE = struct.Struct("<f")
# A norm below this is an all-zero (or denormal) embedding: it has no direction to compare.
_MIN_NORM = 1e-12


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32, so a dot product is the cosine similarity.

    Raises:
        EmbeddingFormatError: a row is all zeros or not finite (nothing to compare by angle).
    """
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms < _MIN_NORM):
        raise EmbeddingFormatError(
            "An embedding is all zeros or contains NaN/inf. Classify the product's image again "
            "to compute a fresh embedding.")
    return array / norms


def embedding_encode(vector: np.ndarray, *, codec: str = CODEC_FLOAT16) -> bytes:
    """Encode one embedding for storage (e.g. a ``BinaryField``), L2-normalised first.

    Args:
        vector: 1-D float array (the backbone's pooled output, or its projection).
        codec: ``CODEC_FLOAT16`` (default) or ``CODEC_INT8``.

    Returns:
        Header + payload bytes that ``embedding_decode`` turns back into a unit vector.

    Raises:
        EmbeddingFormatError: not 1-D, too many dimensions, all zeros/NaN, or unknown codec.
    """
    array = np.asarray(vector)
    if array.ndim != 1 or not 0 < array.shape[0] <= 0xFFFF:
        raise EmbeddingFormatError(
            f"An embedding must be one vector of 1 to 65535 numbers, got shape {array.shape}.")
    if codec not in _TAGS:
        raise EmbeddingFormatError(
            f"Unknown embedding codec {codec!r}; use {CODEC_FLOAT16!r} or {CODEC_INT8!r}.")
    unit = l2_normalise(array)
    header = _HEADER.pack(_TAGS[codec], unit.shape[0])
    if codec == CODEC_FLOAT16:
        return header + unit.astype("<f2").tobytes()
    scale = float(np.abs(unit).max()) / 127.0
    quantised = np.clip(np.rint(unit / scale), -127, 127).astype(np.int8)
    return header + _SCALE.pack(scale) + quantised.tobytes()


def embedding_decode(data: bytes) -> np.ndarray:
    """Decode bytes from ``embedding_encode`` into a float32 unit vector.

    Raises:
        EmbeddingFormatError: the bytes are truncated, padded or carry an unknown codec tag.
    """
    data = bytes(data)  # memoryview from a database driver -> bytes
    if len(data) < _HEADER.size:
        raise EmbeddingFormatError("A stored embedding is truncated; classify the image again.")
    tag, dims = _HEADER.unpack_from(data)
    codec = _CODECS.get(tag)
    payload = data[_HEADER.size:]
    if codec == CODEC_FLOAT16 and len(payload) == 2 * dims:
        vector = np.frombuffer(payload, dtype="<f2").astype(np.float32)
    elif codec == CODEC_INT8 and len(payload) == _SCALE.size + dims:
        (scale,) = _SCALE.unpack_from(payload)
        vector = np.frombuffer(payload[_SCALE.size:], dtype=np.int8).astype(np.float32) * scale
    else:
        raise EmbeddingFormatError(
            "A stored embedding is corrupt (unknown codec or wrong length); classify the image "
            "again to store a fresh one.")
    return l2_normalise(vector)
