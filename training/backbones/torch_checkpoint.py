"""A reader of PyTorch checkpoint files into NumPy arrays, without torch and without running code.

``torch.load`` unpickles whatever the file names, so a weights file from the internet can run
code on the machine that opens it. This reader admits only the handful of globals a tensor
checkpoint needs (an ``OrderedDict``, the tensor-rebuild functions and the storage dtype types),
each mapped to a harmless stand-in; any other global is refused before anything is called.

Both layouts ``torch.save`` has written are read:

* legacy (before torch 1.6, and ``_use_new_zipfile_serialization=False``): a run of pickles
  (magic number, protocol version, sys_info, the object, the list of storage keys) followed by
  each storage as an 8-byte element count and the raw data;
* zip (torch >= 1.6): ``<name>/data.pkl`` plus one ``<name>/data/<key>`` record per storage.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import math
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from training.exceptions import WeightsUnavailableError

# torch/serialization.py MAGIC_NUMBER and PROTOCOL_VERSION of the legacy layout.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
# A state dict's pickle holds only names, shapes and storage keys (42 KB for EfficientNet-Lite0);
# a data.pkl record larger than this is not a weights file, and reading it could exhaust memory.
MAX_ZIP_PICKLE_BYTES = 64 * 1024 * 1024
# What the fix says when the caller has nothing more specific to suggest.
DEFAULT_FIX = ("Download the file again, or save the weights with "
               "torch.save(model.state_dict(), path) and pass that file.")
# Storage class names as pickled (``torch.FloatStorage``) -> element dtype (little-endian form).
# bfloat16 has no NumPy dtype: it is read as uint16 and widened to float32 (exact).
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "BFloat16Storage": "<u2", "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "<i1", "ByteStorage": "<u1", "BoolStorage": "<?",
}


class _Refused(Exception):
    """Raised inside the unpickler; turned into a WeightsUnavailableError naming the file."""


class _Corrupt(Exception):
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
class _Storage:
    """A storage named in the pickle; its data is read after the pickle, keyed by ``key``."""

    key: str
    storage_type: _StorageType
    numel: int


@dataclasses.dataclass(frozen=True, slots=True)
class _StorageView:
    """What a persistent id resolves to: a storage, from element ``offset`` on (legacy views)."""

    storage: _Storage
    offset: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class _TensorRef:
    """What ``_rebuild_tensor_v2`` would build: a strided view into a storage, made lazily."""

    storage: _Storage
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
        raise _Corrupt("a tensor refers to something that is not a storage")
    size, stride = _int_tuple(size), _int_tuple(stride)
    if len(size) != len(stride):
        raise _Corrupt(f"a tensor has size {size} but stride {stride}")
    return _TensorRef(view.storage, view.offset + _whole(storage_offset), size, stride)


def _rebuild_parameter(data: Any, *_ignored: Any) -> Any:
    """Stand-in for torch._utils._rebuild_parameter: a Parameter's values are its data's."""
    return data


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Corrupt(f"expected a whole number, found {type(value).__name__}")
    return value


def _int_tuple(values: Any) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)):
        raise _Corrupt(f"expected a shape tuple, found {type(values).__name__}")
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


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``_allowed_global``'s names and records storages by key.

    With ``storages=None`` it admits no global and no persistent id at all (the legacy layout's
    header pickles are plain numbers, dicts and lists).
    """

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage] | None = None):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if self._storages is None:
            raise _Refused(f"its header refers to {module}.{name}: it is not a torch.save file "
                           "(nothing of it was run)")
        allowed = _allowed_global(module, name)
        if allowed is None:
            raise _Refused(f"it refers to {module}.{name}, which a weights file never needs and "
                           "which could run code; it was not loaded")
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        if self._storages is None or not isinstance(pid, tuple) or not pid:
            raise _Refused("it holds an unexpected persistent reference")
        if pid[0] == "module":
            raise _Refused("it is a whole pickled model (torch.save(model)), which would run "
                           "its source code; save model.state_dict() instead")
        if pid[0] != "storage" or len(pid) not in (5, 6):
            raise _Corrupt(f"unknown persistent reference {pid[0]!r}")
        storage = self._storage(pid[1], pid[2], pid[4])
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return _StorageView(storage)
        # Legacy views: (view key, element offset into the root storage, element count).
        return _StorageView(storage, _whole(view[1]))

    def _storage(self, storage_type: Any, key: Any, numel: Any) -> _Storage:
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise _Corrupt("a storage reference has an unknown type or key")
        known = self._storages.setdefault(key, _Storage(key, storage_type, _whole(numel)))
        if known.storage_type != storage_type:
            raise _Corrupt(f"storage {key} is referenced with two dtypes")
        return known


def file_sha256(path: Path) -> str | None:
    """Hex SHA-256 of a file's bytes, or ``None`` when it cannot be read (for error messages)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def read_torch_checkpoint(path: str | Path, *, fix: str = DEFAULT_FIX) -> Any:
    """Read a ``torch.save`` file (legacy or zip layout) with every tensor as a NumPy array.

    Args:
        path: the ``.pth``/``.pt`` file.
        fix: what the error message tells the operator to do if the file cannot be used.

    Returns:
        The saved object, with each tensor replaced by a C-contiguous ``np.ndarray`` (native byte
        order; bfloat16 widened to float32). Containers are plain dicts, lists and tuples.

    Raises:
        WeightsUnavailableError: the file is missing, truncated, not a PyTorch checkpoint, or
            refers to a global other than the tensor-rebuild ones (nothing of it is run). The
            error carries ``path``, ``sha256`` and ``fix``.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            result, arrays = _read_zip(path)
        else:
            with open(path, "rb") as handle:
                result, arrays = _read_legacy(handle)
        return _resolve(result, arrays)
    except FileNotFoundError:
        raise WeightsUnavailableError(f"Weights file {path} does not exist.", path=path,
                                      fix=fix) from None
    except _Refused as exc:
        raise _error(path, f"Refused to load {path.name}: {exc}.", fix) from None
    except Exception as exc:  # any parse failure of an untrusted file means "corrupt"
        raise _error(path, f"{path.name} is not a readable PyTorch checkpoint "
                           f"({_describe(exc)}).", fix) from None


def _error(path: Path, problem: str, fix: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(problem, path=path, sha256=file_sha256(path), fix=fix)


def _describe(exc: Exception) -> str:
    if isinstance(exc, (_Corrupt, OSError)):
        return str(exc)
    if isinstance(exc, EOFError):
        return "the file ends early: it is truncated"
    if isinstance(exc, RecursionError):
        return "its object nesting is too deep or cyclic"
    return f"{type(exc).__name__}: {exc}"


def _read_legacy(handle: BinaryIO) -> tuple[Any, dict[str, np.ndarray]]:
    """The legacy run of pickles, then each storage's element count and raw bytes."""
    header = _RestrictedUnpickler(handle)
    if header.load() != LEGACY_MAGIC_NUMBER:
        raise _Corrupt("wrong magic number: not a torch.save file")
    if header.load() != LEGACY_PROTOCOL_VERSION:
        raise _Corrupt("unknown legacy protocol version")
    sys_info = header.load()
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    byteorder = "<" if little else ">"
    storages: dict[str, _Storage] = {}
    result = _RestrictedUnpickler(handle, storages).load()
    keys = _RestrictedUnpickler(handle).load()
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise _Corrupt("its storage key list does not match the storages its tensors use")
    file_size = os.fstat(handle.fileno()).st_size
    arrays = {}
    for key in keys:
        storage = storages[key]
        (count,) = struct.unpack(f"{byteorder}q", _read_exactly(handle, 8, file_size))
        if count != storage.numel:
            raise _Corrupt(f"storage {key} holds {count} elements, its tensors expect "
                           f"{storage.numel}")
        dtype = storage.storage_type.dtype.newbyteorder(byteorder)
        arrays[key] = _as_array(storage, _read_exactly(handle, count * dtype.itemsize, file_size),
                                dtype)
    return result, arrays


def _read_exactly(handle: BinaryIO, size: int, file_size: int) -> bytes:
    # Compared with the bytes left first, so a forged count cannot make read() allocate it.
    if size > file_size - handle.tell():
        raise EOFError
    return handle.read(size)


def _read_zip(path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    """The zip layout: ``<prefix>data.pkl`` and one ``<prefix>data/<key>`` record per storage."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        pickles = [n for n in names if n.rsplit("/", 1)[-1] == "data.pkl"]
        if len(pickles) != 1:
            raise _Corrupt("a zip file without exactly one data.pkl: not a torch.save file")
        prefix = pickles[0][: -len("data.pkl")]
        if archive.getinfo(pickles[0]).file_size > MAX_ZIP_PICKLE_BYTES:
            raise _Corrupt("its data.pkl is too large for a weights file")
        byteorder = "<"
        if f"{prefix}byteorder" in names:
            byteorder = "<" if archive.read(f"{prefix}byteorder").strip() == b"little" else ">"
        storages: dict[str, _Storage] = {}
        result = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
        arrays = {}
        for key, storage in storages.items():
            dtype = storage.storage_type.dtype.newbyteorder(byteorder)
            name = f"{prefix}data/{key}"
            if name not in names:
                raise _Corrupt(f"record {name} is missing")
            # Checked before reading so a compressed record cannot inflate beyond its tensors.
            if archive.getinfo(name).file_size != storage.numel * dtype.itemsize:
                raise _Corrupt(f"record {name} does not hold {storage.numel} elements")
            arrays[key] = _as_array(storage, archive.read(name), dtype)
    return result, arrays


def _as_array(storage: _Storage, raw: bytes, dtype: np.dtype) -> np.ndarray:
    """A storage's bytes as a 1-D array in native byte order (bfloat16 widened to float32)."""
    data = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)
    if storage.storage_type.name == "BFloat16Storage":
        data = (data.astype(np.uint32) << 16).view(np.float32)
    return data


def _resolve(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Replace every tensor reference by its array, rebuilding containers as plain ones."""
    if isinstance(value, _TensorRef):
        return _materialise(value, arrays[value.storage.key])
    if isinstance(value, dict):
        return {k: _resolve(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v, arrays) for v in value)
    if isinstance(value, (_StorageView, _StorageType, _Global)):
        raise _Corrupt("it holds a bare storage or function, not a tensor")
    return value


def _materialise(ref: _TensorRef, flat: np.ndarray) -> np.ndarray:
    """Copy the strided view a tensor describes out of its storage, bounds-checked first."""
    if any(n < 0 for n in ref.size) or any(s < 0 for s in ref.stride) or ref.offset < 0:
        raise _Corrupt(f"a tensor of storage {ref.storage.key} has a negative size or stride")
    numel = math.prod(ref.size)
    if numel == 0:
        return np.zeros(ref.size, dtype=flat.dtype)
    # torch.save writes no tensor bigger than its storage; refusing one keeps the memory a read
    # can take bounded by the file's size (stride-0 views could otherwise ask for terabytes).
    if numel > flat.size:
        raise _Corrupt(f"a tensor has more elements than its storage {ref.storage.key}")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= flat.size:
        raise _Corrupt(f"a tensor reaches past the end of storage {ref.storage.key}")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset:], shape=ref.size, strides=[s * flat.itemsize for s in ref.stride],
        writeable=False,
    )
    return np.array(view, order="C")


def read_state_dict(path: str | Path, *, fix: str = DEFAULT_FIX) -> dict[str, np.ndarray]:
    """Read a checkpoint that holds a flat ``name -> tensor`` mapping (a ``state_dict``).

    A training checkpoint ``{"state_dict": {...}, "epoch": ...}`` (or ``"model"``) is unwrapped,
    and the ``module.`` prefix ``nn.DataParallel`` adds is dropped.

    Args:
        path: the checkpoint file.
        fix: what the error message tells the operator to do if the file cannot be used.

    Returns:
        Parameter and buffer names mapped to arrays, in file order.

    Raises:
        WeightsUnavailableError: unreadable file (see ``read_torch_checkpoint``) or not a mapping
            of names to tensors.
    """
    content = read_torch_checkpoint(path, fix=fix)
    for wrapper in ("state_dict", "model"):
        if isinstance(content, dict) and isinstance(content.get(wrapper), dict):
            content = content[wrapper]
    if not isinstance(content, dict) or not content or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in content.items()
    ):
        raise _error(Path(path), f"{Path(path).name} does not hold a state dict (a mapping of "
                                 "parameter names to tensors).", fix)
    return {k.removeprefix("module."): v for k, v in content.items()}
