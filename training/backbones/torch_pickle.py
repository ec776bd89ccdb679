"""What a PyTorch checkpoint's pickle may contain, and an unpickler that admits nothing else.

``torch.load`` unpickles whatever the file names, so a weights file from the internet can run
code on the machine that opens it. ``RestrictedUnpickler`` admits only the handful of globals a
tensor checkpoint needs (an ``OrderedDict``, the tensor-rebuild functions and the storage dtype
types), each mapped to a harmless stand-in; any other global is refused before anything is
called. Tensors come out as lazy references, turned into NumPy arrays once the storage bytes
(which follow the pickle) have been read.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import pickle
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

# Storage class names as pickled (``torch.FloatStorage``) -> element dtype (little-endian form).
# bfloat16 has no NumPy dtype: it is read as uint16 and widened to float32 (exact).
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "BFloat16Storage": "<u2", "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "<i1", "ByteStorage": "<u1", "BoolStorage": "<?",
}


class CheckpointRefused(Exception):
    """The pickle names something a weights file never needs; nothing of it was run."""


class CheckpointCorrupt(Exception):
    """The file's structure is inconsistent (sizes, keys, strides); message says what."""


# The stand-ins below are frozen with slots: a pickle's BUILD opcode sets attributes on whatever
# object it is given, and must not be able to alter them (they are shared within one read).


@dataclasses.dataclass(frozen=True, slots=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co.: only its element dtype matters."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(STORAGE_DTYPES[self.name])


@dataclasses.dataclass(frozen=True, slots=True)
class Storage:
    """A storage named in the pickle; its data is read after the pickle, keyed by ``key``."""

    key: str
    storage_type: _StorageType
    numel: int


@dataclasses.dataclass(frozen=True, slots=True)
class _StorageView:
    """What a persistent id resolves to: a storage, from element ``offset`` on (legacy views)."""

    storage: Storage
    offset: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class _TensorRef:
    """What ``_rebuild_tensor_v2`` would build: a strided view into a storage, made lazily."""

    storage: Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Global:
    """What ``find_class`` hands the unpickler: a frozen wrapper of one stand-in function."""

    function: Callable[..., Any]

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


def _rebuild_tensor(view: Any, storage_offset: Any, size: Any, stride: Any,
                    *_ignored: Any) -> _TensorRef:
    """Stand-in for torch._utils._rebuild_tensor(_v2): records the view, allocates nothing.

    The trailing arguments (requires_grad, backward_hooks, metadata) do not change the values.
    """
    if not isinstance(view, _StorageView):
        raise CheckpointCorrupt("a tensor refers to something that is not a storage")
    size, stride = _int_tuple(size), _int_tuple(stride)
    if len(size) != len(stride):
        raise CheckpointCorrupt(f"a tensor has size {size} but stride {stride}")
    return _TensorRef(view.storage, view.offset + _whole(storage_offset), size, stride)


def _rebuild_parameter(data: Any, *_ignored: Any) -> Any:
    """Stand-in for torch._utils._rebuild_parameter: a Parameter's values are its data's."""
    return data


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointCorrupt(f"expected a whole number, found {type(value).__name__}")
    return value


def _int_tuple(values: Any) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)):
        raise CheckpointCorrupt(f"expected a shape tuple, found {type(values).__name__}")
    return tuple(_whole(v) for v in values)


def _allowed_global(module: str, name: str) -> Any | None:
    """The stand-in for one of the few globals a tensor checkpoint needs, else ``None``."""
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict  # a built-in type: BUILD cannot set attributes on it
    if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
        return _Global(_rebuild_tensor)
    if module == "torch._utils" and name == "_rebuild_parameter":
        return _Global(_rebuild_parameter)
    if module == "torch" and name in STORAGE_DTYPES:
        return _StorageType(name)
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``_allowed_global``'s names and records storages by key.

    With ``storages=None`` it admits no global and no persistent id at all (the legacy layout's
    header pickles are plain numbers, dicts and lists).
    """

    def __init__(self, file: BinaryIO, storages: dict[str, Storage] | None = None):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if self._storages is None:
            raise CheckpointRefused(f"its header refers to {module}.{name}: it is not a "
                                    "torch.save file (nothing of it was run)")
        allowed = _allowed_global(module, name)
        if allowed is None:
            raise CheckpointRefused(f"it refers to {module}.{name}, which a weights file never "
                                    "needs and which could run code; it was not loaded")
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        if self._storages is None or not isinstance(pid, tuple) or not pid:
            raise CheckpointRefused("it holds an unexpected persistent reference")
        if pid[0] == "module":
            raise CheckpointRefused("it is a whole pickled model (torch.save(model)), which "
                                    "would run its source code; save model.state_dict() instead")
        if pid[0] != "storage" or len(pid) not in (5, 6):
            raise CheckpointCorrupt(f"unknown persistent reference {pid[0]!r}")
        storage = self._storage(pid[1], pid[2], pid[4])
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return _StorageView(storage)
        # Legacy views: (view key, element offset into the root storage, element count).
        return _StorageView(storage, _whole(view[1]))

    def _storage(self, storage_type: Any, key: Any, numel: Any) -> Storage:
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise CheckpointCorrupt("a storage reference has an unknown type or key")
        known = self._storages.setdefault(key, Storage(key, storage_type, _whole(numel)))
        if known.storage_type != storage_type:
            raise CheckpointCorrupt(f"storage {key} is referenced with two dtypes")
        return known


def storage_array(storage: Storage, raw: bytes, dtype: np.dtype) -> np.ndarray:
    """A storage's bytes as a 1-D array in native byte order (bfloat16 widened to float32)."""
    data = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)
    if storage.storage_type.name == "BFloat16Storage":
        data = (data.astype(np.uint32) << 16).view(np.float32)
    return data


def resolve_tensors(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Replace every tensor reference by its array, rebuilding containers as plain ones."""
    if isinstance(value, _TensorRef):
        return _materialise(value, arrays[value.storage.key])
    if isinstance(value, dict):
        return {k: resolve_tensors(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(resolve_tensors(v, arrays) for v in value)
    if isinstance(value, (_StorageView, _StorageType, _Global)):
        raise CheckpointCorrupt("it holds a bare storage or function, not a tensor")
    return value


def _materialise(ref: _TensorRef, flat: np.ndarray) -> np.ndarray:
    """Copy the strided view a tensor describes out of its storage, bounds-checked first."""
    if any(n < 0 for n in ref.size) or any(s < 0 for s in ref.stride) or ref.offset < 0:
        raise CheckpointCorrupt(
            f"a tensor of storage {ref.storage.key} has a negative size or stride")
    numel = math.prod(ref.size)
    if numel == 0:
        return np.zeros(ref.size, dtype=flat.dtype)
    # torch.save writes no tensor bigger than its storage; refusing one keeps the memory a read
    # can take bounded by the file's size (stride-0 views could otherwise ask for terabytes).
    if numel > flat.size:
        raise CheckpointCorrupt(f"a tensor has more elements than its storage {ref.storage.key}")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= flat.size:
        raise CheckpointCorrupt(f"a tensor reaches past the end of storage {ref.storage.key}")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset:], shape=ref.size, strides=[s * flat.itemsize for s in ref.stride],
        writeable=False,
    )
    return np.array(view, order="C")
