"""A reader of PyTorch checkpoint files into NumPy arrays, without torch and without running code.

The pickle inside is read by ``torch_pickle.RestrictedUnpickler`` (only tensor-rebuild globals,
nothing called). Both layouts ``torch.save`` has written are read:

* legacy (before torch 1.6, and ``_use_new_zipfile_serialization=False``): a run of pickles
  (magic number, protocol version, sys_info, the object, the list of storage keys) followed by
  each storage as an 8-byte element count and the raw data;
* zip (torch >= 1.6): ``<name>/data.pkl`` plus one ``<name>/data/<key>`` record per storage.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from training.backbones.torch_pickle import (
    CheckpointCorrupt,
    CheckpointRefused,
    RestrictedUnpickler,
    Storage,
    resolve_tensors,
    storage_array,
)
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
        return resolve_tensors(result, arrays)
    except FileNotFoundError:
        raise WeightsUnavailableError(f"Weights file {path} does not exist.", path=path,
                                      fix=fix) from None
    except CheckpointRefused as exc:
        raise _error(path, f"Refused to load {path.name}: {exc}.", fix) from None
    except Exception as exc:  # any parse failure of an untrusted file means "corrupt"
        raise _error(path, f"{path.name} is not a readable PyTorch checkpoint "
                           f"({_describe(exc)}).", fix) from None


def _error(path: Path, problem: str, fix: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(problem, path=path, sha256=file_sha256(path), fix=fix)


def _describe(exc: Exception) -> str:
    if isinstance(exc, (CheckpointCorrupt, OSError)):
        return str(exc)
    if isinstance(exc, EOFError):
        return "the file ends early: it is truncated"
    if isinstance(exc, RecursionError):
        return "its object nesting is too deep or cyclic"
    return f"{type(exc).__name__}: {exc}"


def _read_legacy(handle: BinaryIO) -> tuple[Any, dict[str, np.ndarray]]:
    """The legacy run of pickles, then each storage's element count and raw bytes."""
    header = RestrictedUnpickler(handle)
    if header.load() != LEGACY_MAGIC_NUMBER:
        raise CheckpointCorrupt("wrong magic number: not a torch.save file")
    if header.load() != LEGACY_PROTOCOL_VERSION:
        raise CheckpointCorrupt("unknown legacy protocol version")
    sys_info = header.load()
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    byteorder = "<" if little else ">"
    storages: dict[str, Storage] = {}
    result = RestrictedUnpickler(handle, storages).load()
    keys = RestrictedUnpickler(handle).load()
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise CheckpointCorrupt("its storage key list does not match the storages its tensors use")
    file_size = os.fstat(handle.fileno()).st_size
    arrays = {}
    for key in keys:
        storage = storages[key]
        (count,) = struct.unpack(f"{byteorder}q", _read_exactly(handle, 8, file_size))
        if count != storage.numel:
            raise CheckpointCorrupt(
                f"storage {key} holds {count} elements, its tensors expect {storage.numel}")
        dtype = storage.storage_type.dtype.newbyteorder(byteorder)
        raw = _read_exactly(handle, count * dtype.itemsize, file_size)
        arrays[key] = storage_array(storage, raw, dtype)
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
            raise CheckpointCorrupt(
                "a zip file without exactly one data.pkl: not a torch.save file")
        prefix = pickles[0][: -len("data.pkl")]
        if archive.getinfo(pickles[0]).file_size > MAX_ZIP_PICKLE_BYTES:
            raise CheckpointCorrupt("its data.pkl is too large for a weights file")
        byteorder = "<"
        if f"{prefix}byteorder" in names:
            byteorder = "<" if archive.read(f"{prefix}byteorder").strip() == b"little" else ">"
        storages: dict[str, Storage] = {}
        result = RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
        arrays = {}
        for key, storage in storages.items():
            dtype = storage.storage_type.dtype.newbyteorder(byteorder)
            name = f"{prefix}data/{key}"
            if name not in names:
                raise CheckpointCorrupt(f"record {name} is missing")
            # Checked before reading so a compressed record cannot inflate beyond its tensors.
            if archive.getinfo(name).file_size != storage.numel * dtype.itemsize:
                raise CheckpointCorrupt(f"record {name} does not hold {storage.numel} elements")
            arrays[key] = storage_array(storage, archive.read(name), dtype)
    return result, arrays


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
