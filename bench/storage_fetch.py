"""Bytes and milliseconds per image: classifier fetch of originals vs Appwrite previews.

Starts the Appwrite emulator in-process, uploads ~50 generated 1600x1200 quality-90 JPEG photos
through AppwriteStorage, then times ``catalog.storage.read_image_bytes`` with
APPWRITE_CLASSIFY_FROM_PREVIEW off (originals) and on (a JPEG preview 2x the model input).
Loopback hides network time, so the ms column mostly shows server work (the emulator resizes
with Pillow); bytes is what a real network would carry.

Run: .venv/bin/python bench/storage_fetch.py [--images 50] [--input-size 224]
"""

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.appwrite_emulator import AppwriteEmulator  # noqa: E402

BUCKET = "bench-bucket"
# A shop server's share of a link to Appwrite Cloud; turns bytes into transfer time.
LINK_MBIT_PER_S = 100


def photo(seed: int) -> bytes:
    """A 1600x1200 q90 JPEG with photo-like detail (gradient + noise), ~0.5 MB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:1200, 0:1600]
    base = np.stack([(x / 1600 * 255), (y / 1200 * 255), ((x + y) / 2800 * 255)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def measure(names: list[str], preview_width: int) -> tuple[float, float]:
    from catalog.storage import read_image_bytes

    sizes, times = [], []
    for name in names:
        start = time.perf_counter()
        data = read_image_bytes(name, preview_width=preview_width)
        times.append((time.perf_counter() - start) * 1000)
        sizes.append(len(data))
    return statistics.mean(sizes), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--input-size", type=int, default=224)
    args = parser.parse_args()
    with AppwriteEmulator() as emu:
        emu.create_bucket(BUCKET)
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "1",
            "APPWRITE_ENDPOINT": emu.endpoint, "APPWRITE_PROJECT_ID": emu.project_id,
            "APPWRITE_API_KEY": emu.api_key, "APPWRITE_BUCKET_ID": BUCKET,
        })
        import django

        django.setup()
        from django.conf import settings
        from django.core.files.base import ContentFile
        from django.core.files.storage import default_storage

        from classifier.preprocessing import source_size

        names = [default_storage.save(f"bench/photo-{i:02}.jpg", ContentFile(photo(i)))
                 for i in range(args.images)]
        width = source_size((args.input_size, args.input_size))[1]
        rows = []
        for label, preview in (("original", False), (f"preview {width}w", True)):
            settings.APPWRITE["CLASSIFY_FROM_PREVIEW"] = preview
            rows.append((label, *measure(names, width)))
    base_bytes, base_ms = rows[0][1], rows[0][2]
    print(f"{args.images} photos 1600x1200 q90, model input {args.input_size}px, emulator on "
          "loopback")
    print(f"{'fetch':<16}{'bytes/image':>12}{'vs orig':>9}{'loopback ms':>13}"
          f"{f'+ transfer @{LINK_MBIT_PER_S}Mbit ms':>28}")
    for label, size, ms in rows:
        transfer_ms = size * 8 / (LINK_MBIT_PER_S * 1e6) * 1000
        print(f"{label:<16}{size:>12,.0f}{size / base_bytes:>9.0%}{ms:>13.1f}"
              f"{ms + transfer_ms:>28.1f}")
    print(f"(loopback ms: the emulator's Pillow resize and the metadata request dominate; "
          f"original median {base_ms:.1f} ms)")


if __name__ == "__main__":
    main()
