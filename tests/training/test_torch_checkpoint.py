"""The restricted PyTorch checkpoint reader: real torch.save files, hand-made and hostile ones."""

from __future__ import annotations

import builtins
import hashlib
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from training.backbones.torch_checkpoint import (
    LEGACY_MAGIC_NUMBER,
    LEGACY_PROTOCOL_VERSION,
    read_state_dict,
    read_torch_checkpoint,
)
from training.exceptions import WeightsUnavailableError

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "torch_checkpoints"


def sample_state_dict() -> dict[str, np.ndarray]:
    """What tools/reference/torch_checkpoint_samples.py saved, rebuilt with NumPy."""
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    return {
        "transposed": base.T,
        "offset_slice": base[1:3, 2:5],
        "half": np.arange(5, dtype=np.float16) / np.float16(4),
        "bfloat16": np.array([1.5, -2.25, 3.0], dtype=np.float32),
        "flags": np.array([True, False, True]),
        "count": np.array(7, dtype=np.int64),
        "param": np.full((2, 2), 0.5, dtype=np.float32),
    }


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_files_written_by_torch_save_read_back_exactly(layout):
    state = read_state_dict(SAMPLES / f"{layout}.pth")

    expected = sample_state_dict()
    assert list(state) == list(expected)
    for name, array in expected.items():
        assert state[name].dtype == array.dtype, name
        assert state[name].shape == array.shape, name
        np.testing.assert_array_equal(state[name], array, err_msg=name)
        assert state[name].flags.c_contiguous


# --- A legacy file written by hand, opcode by opcode (no torch needed) -------------------------


def _text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)  # BININT


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tensor(storage_type: str, key: str, numel: int, offset: int, size: tuple, stride: tuple):
    """``_rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict())``."""
    storage = _tuple([_text("storage"), _global("torch", storage_type), _text(key), _text("cpu"),
                      _int(numel), b"N"]) + b"Q"  # BINPERSID
    hooks = _global("collections", "OrderedDict") + b")R"
    return (_global("torch._utils", "_rebuild_tensor_v2")
            + _tuple([storage, _int(offset), _tuple([_int(n) for n in size]),
                      _tuple([_int(s) for s in stride]), b"\x89", hooks]) + b"R")


def write_legacy(path: Path, tensors: dict[str, bytes], storages: dict[str, bytes],
                 numels: dict[str, int]) -> Path:
    """The legacy layout: magic, version, sys_info, the dict pickle, keys, then each storage."""
    body = (b"\x80\x02" + _global("collections", "OrderedDict") + b")R("
            + b"".join(_text(name) + tensor for name, tensor in tensors.items()) + b"u.")
    parts = [pickle.dumps(LEGACY_MAGIC_NUMBER, protocol=2),
             pickle.dumps(LEGACY_PROTOCOL_VERSION, protocol=2),
             pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
             body, pickle.dumps(list(storages), protocol=2)]
    for key, data in storages.items():
        parts.append(struct.pack("<q", numels[key]) + data)
    path.write_bytes(b"".join(parts))
    return path


def test_hand_written_legacy_file_honours_offsets_and_strides(tmp_path):
    values = np.arange(12, dtype="<f4")
    path = write_legacy(
        tmp_path / "hand.pth",
        tensors={
            "matrix": _tensor("FloatStorage", "0", 12, 0, (3, 4), (4, 1)),
            "transposed": _tensor("FloatStorage", "0", 12, 0, (4, 3), (1, 4)),
            "window": _tensor("FloatStorage", "0", 12, 5, (2, 2), (4, 1)),
            "every_other": _tensor("FloatStorage", "0", 12, 3, (4,), (2,)),
            "step": _tensor("LongStorage", "1", 1, 0, (), ()),
        },
        storages={"0": values.tobytes(), "1": struct.pack("<q", -3)},
        numels={"0": 12, "1": 1},
    )

    state = read_state_dict(path)

    np.testing.assert_array_equal(state["matrix"], values.reshape(3, 4))
    np.testing.assert_array_equal(state["transposed"], values.reshape(3, 4).T)
    np.testing.assert_array_equal(state["window"], [[5, 6], [9, 10]])
    np.testing.assert_array_equal(state["every_other"], [3, 5, 7, 9])
    assert state["step"].dtype == np.int64 and int(state["step"]) == -3


def test_tensor_reaching_past_its_storage_is_corrupt(tmp_path):
    path = write_legacy(tmp_path / "overrun.pth",
                        tensors={"w": _tensor("FloatStorage", "0", 4, 2, (4,), (1,))},
                        storages={"0": np.zeros(4, "<f4").tobytes()}, numels={"0": 4})

    with pytest.raises(WeightsUnavailableError, match="past the end of storage 0"):
        read_state_dict(path)


# --- Hostile and broken files --------------------------------------------------------------------


class RunsCommand:
    """Pickles as a call of ``function(argument)``: what a booby-trapped .pth contains."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


def hostile_payloads(marker: Path) -> dict[str, object]:
    return {
        "os.system": RunsCommand(os.system, f"touch {marker}"),
        "builtins.eval": RunsCommand(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval"])
@pytest.mark.parametrize("layout", ["legacy", "zip", "bare pickle"])
def test_pickle_calling_code_is_refused_without_running_it(tmp_path, payload, layout):
    marker = tmp_path / "code-ran"
    state = OrderedDict(weight=hostile_payloads(marker)[payload])
    path = tmp_path / "hostile.pth"
    if layout == "legacy":
        path.write_bytes(b"".join(pickle.dumps(part, protocol=2) for part in (
            LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, {"little_endian": True}, state, [])))
    elif layout == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("hostile/data.pkl", pickle.dumps(state, protocol=2))
    else:
        path.write_bytes(pickle.dumps(state, protocol=2))

    with pytest.raises(WeightsUnavailableError) as caught:
        read_torch_checkpoint(path)

    assert not marker.exists()
    error = caught.value
    assert "Refused to load hostile.pth" in error.problem
    if layout == "bare pickle":  # refused at its first global, the OrderedDict
        assert "its header refers to collections.OrderedDict" in error.problem
    else:  # named as written in the file: posix.system, __builtin__.eval (protocol 2 spelling)
        referred = error.problem.split(": it refers to ")[1].split(",")[0]
        assert referred.endswith("." + payload.split(".")[1])
    assert error.sha256 == sha256_of(path)
    assert error.path == str(path)


def test_whole_pickled_model_is_refused(tmp_path):
    body = b"\x80\x02" + _tuple([_text("module"), _text("Net"), _text("net.py"),
                                 _text("class Net: ...")]) + b"Q."
    path = tmp_path / "model.pth"
    path.write_bytes(b"".join(pickle.dumps(part, protocol=2) for part in (
        LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, {})) + body)

    with pytest.raises(WeightsUnavailableError, match=r"save model.state_dict\(\) instead"):
        read_torch_checkpoint(path)


@pytest.mark.parametrize("keep", [0.02, 0.5, 0.99])
def test_truncated_file_names_itself_its_checksum_and_the_fix(tmp_path, keep):
    data = (SAMPLES / "legacy.pth").read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * keep)])

    with pytest.raises(WeightsUnavailableError) as caught:
        read_state_dict(path, fix="Reinstall the package.")

    error = caught.value
    assert "cut.pth is not a readable PyTorch checkpoint" in error.problem
    assert "truncated" in error.problem
    assert (error.path, error.sha256, error.fix) == (str(path), sha256_of(path),
                                                     "Reinstall the package.")
    assert str(path) in str(error) and sha256_of(path) in str(error)
    assert "Reinstall the package." in str(error)


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())

    with pytest.raises(WeightsUnavailableError, match="noise.pth is not a readable PyTorch"):
        read_state_dict(path)


def test_missing_file_has_no_checksum(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="does not exist") as caught:
        read_state_dict(tmp_path / "absent.pth")

    assert caught.value.sha256 is None
    assert "unknown: not readable" in str(caught.value)


def test_checkpoint_that_is_not_a_state_dict_is_refused(tmp_path):
    path = write_legacy(tmp_path / "empty.pth", tensors={}, storages={}, numels={})

    with pytest.raises(WeightsUnavailableError, match="does not hold a state dict"):
        read_state_dict(path)
