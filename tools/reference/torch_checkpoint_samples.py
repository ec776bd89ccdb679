"""Tiny checkpoints written by real ``torch.save``, both layouts, for the restricted reader's tests.

Run once in the scratch virtualenv of ``efficientnet_lite0_reference.py`` (``pip install
torch==2.13.0``)::

    /tmp/refvenv/bin/python tools/reference/torch_checkpoint_samples.py

It writes ``tests/fixtures/torch_checkpoints/{legacy,zip}.pth`` holding the same state dict: a
transposed (non-contiguous) float32 view, a slice with a non-zero storage offset sharing that
storage, float16, bfloat16, a bool vector, an int64 scalar and an ``nn.Parameter``.
``tests/training/test_torch_checkpoint.py`` rebuilds the expected arrays with NumPy from the
same formulas (``sample_state_dict`` there mirrors ``state_dict`` here).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[2] / "tests/fixtures/torch_checkpoints"


def state_dict() -> OrderedDict:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return OrderedDict([
        ("transposed", base.t()),  # stride (1, 6)
        ("offset_slice", base[1:3, 2:5]),  # storage offset 8, stride (6, 1)
        ("half", torch.arange(5, dtype=torch.float16) / 4),
        ("bfloat16", torch.tensor([1.5, -2.25, 3.0], dtype=torch.bfloat16)),
        ("flags", torch.tensor([True, False, True])),
        ("count", torch.tensor(7)),
        ("param", torch.nn.Parameter(torch.full((2, 2), 0.5))),
    ])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict(), OUT / "legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(state_dict(), OUT / "zip.pth")
    for name in ("legacy.pth", "zip.pth"):
        loaded = torch.load(OUT / name, weights_only=True)
        assert all(torch.equal(loaded[k], v) for k, v in state_dict().items())
        print(name, (OUT / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
