"""Image bytes to model input: the one TensorFlow-free preprocessing for training and inference.

Training (``training/dataset.py``) and inference (``classifier/inference.py``) both call
:func:`decode_images` and :func:`to_model_input`, so a pixel seen in training is the pixel seen in
production. Pixels are scaled exactly once: the exported model takes raw 0-255 float pixels and
rescales inside its graph; :func:`to_model_input` only applies what the stored
:class:`InputContract` declares (identity for the default contract).
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from classifier.contract import RESIZE_METHOD, InputContract
from classifier.exceptions import (
    ImageDecodeError,
    ImageEmptyError,
    ImageError,
    ImageTooLargeError,
)

__all__ = [
    "ALLOWED_EXTENSIONS",
    "ALLOWED_FORMATS",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "RESIZE_METHOD",
    "InputContract",
    "decode_image",
    "decode_images",
    "source_size",
    "to_model_input",
]

# 40 MiB: a 12 MP camera JPEG is 3-8 MB and a lossless 24 MP PNG ~ 35 MB; anything bigger is not a
# product photo, and refusing it before Pillow sees it bounds memory per worker.
MAX_IMAGE_BYTES = 40 * 1024 * 1024

# 50 megapixels: a 4000x3000 camera photo is 12 MP and a 45 MP full-frame camera still fits, but
# one decoded RGBA frame stays under 200 MB. Checked on the header, before decoding, so a
# decompression bomb (a few KB claiming 30000x30000) is refused without allocating it. Pillow's
# own MAX_IMAGE_PIXELS (~89 MP warning, ~179 MP error) is a process global we neither rely on
# nor change.
MAX_IMAGE_PIXELS = 50_000_000

# Formats Pillow may even try to parse. Restricting the plugins keeps rarely-fuzzed decoders
# (EPS, PSD, ICNS, ...) away from untrusted uploads. Phone JPEGs that Pillow reports as "MPO" are
# opened by the JPEG plugin, so "JPEG" covers them.
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
# File name extensions Pillow registers for those formats (".jpg", ".jfif", ".tif", ".dib", ...):
# what a training folder may hold. Derived, so training never drops a format the classifier reads.
ALLOWED_EXTENSIONS = frozenset(
    ext for ext, fmt in Image.registered_extensions().items() if fmt in ALLOWED_FORMATS
)

# Images are reduced to this multiple of the model input before the final resize: JPEG draft
# decoding (DCT scaling) is asked for at it, and a storage that can resize server-side (Appwrite's
# preview) is asked for an image this big. The reduced image is still >= 1.5x the target in both
# axes and the final antialiased bilinear resize does the real downscaling. Draft output then
# differs from a full decode by about one grey level on average (tests pin the tolerance), while
# a 12 MP photo decodes at 1/8 or 1/4 of the cost. 1.5 rather than 2: a 1600x1200 photo for a
# 180 px model then decodes at 1/4 scale instead of 1/2 (6.3 vs 9.1 ms measured). Training and
# inference both get this size from ``source_size`` (and the model bundle's metadata carries it
# for runtimes outside this project), so both sides see identical pixels.
DRAFT_OVERSAMPLE = 1.5


def source_size(size: tuple[int, int]) -> tuple[int, int]:
    """The ``(height, width)`` an image is reduced to before the final resize to ``size``.

    The one source of this number: JPEG draft decoding asks for it, and the classifier and the
    training pipeline ask storage for a preview ``source_size(size)[1]`` pixels wide.

    Args:
        size: The model input ``(height, width)``.

    Returns:
        ``DRAFT_OVERSAMPLE`` times ``size``, rounded up.
    """
    height, width = size
    return math.ceil(height * DRAFT_OVERSAMPLE), math.ceil(width * DRAFT_OVERSAMPLE)


# Pillow's decoders raise a wide, loosely documented set of exceptions on hostile or broken input
# (truncated data is OSError, bad headers SyntaxError/struct.error, odd tables ValueError/
# IndexError/EOFError). Any of them means "this file cannot be decoded".
_DECODE_FAILURES = (OSError, ValueError, EOFError, SyntaxError, struct.error, IndexError, KeyError)

_EXIF_ORIENTATION = 0x0112
_ORIENTATIONS_SWAPPING_AXES = {5, 6, 7, 8}
_WHITE = (255, 255, 255, 255)


def decode_image(
    data: bytes,
    *,
    size: tuple[int, int],
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_decode_pixels: int | None = None,
    allow_draft: bool = True,
) -> np.ndarray:
    """Decode untrusted image bytes into an RGB array of the model's input size.

    Order matters: cheap checks first (empty, byte size), then the header (format, pixel count)
    before any pixel is decoded, then JPEG draft, frame 0, EXIF orientation, RGB conversion (alpha
    composited on white) and one fixed resize (``RESIZE_METHOD``: Pillow bilinear with its
    antialiasing, squashed to the target without cropping).

    Args:
        data: The encoded image file.
        size: Target ``(height, width)``; use ``InputContract.size``.
        max_bytes: Byte limit, :data:`MAX_IMAGE_BYTES` unless a caller is stricter.
        max_pixels: Pixel limit checked on the header, :data:`MAX_IMAGE_PIXELS` by default.
        max_decode_pixels: A stricter limit on the pixels actually decoded (after JPEG draft
            scaling, so a big JPEG that decodes small passes), checked before decoding: it
            bounds the memory one call may take (the API's anonymous classify sets it).
        allow_draft: Let JPEGs decode at a reduced DCT scale (see :data:`DRAFT_OVERSAMPLE`).
            Only parity tests turn it off.

    Returns:
        ``(height, width, 3)`` ``uint8`` array.

    Raises:
        ImageEmptyError: ``data`` is empty.
        ImageTooLargeError: Too many bytes or pixels (checked before decoding).
        ImageDecodeError: Not a supported image, corrupt or truncated.
    """
    height, width = size
    if not data:
        raise ImageEmptyError()
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            f"The image file is {len(data):,} bytes; the limit is {max_bytes:,} bytes. Save it "
            "smaller (e.g. as JPEG, at most 4000 x 4000 pixels) and upload it again."
        )
    img = _open_checked(data, max_pixels=max_pixels)
    seen = f"{img.format} image ({img.size[0]}x{img.size[1]}, mode {img.mode})"
    try:
        if allow_draft and img.format in ("JPEG", "MPO"):
            _draft_for_target(img, height=height, width=width)
        _check_decode_size(img, max_decode_pixels)
        if getattr(img, "is_animated", False):
            img.seek(0)  # Animations: classify the first frame, like a thumbnail would show.
        img.load()  # Surface truncation here, inside the error mapping.
        # In place: the default returns a copy of the whole decoded frame even when there is
        # nothing to rotate, doubling the peak memory of every decode (measured: a 7000x7000
        # PNG peaks at 376 MB with the copy, 196 MB without).
        ImageOps.exif_transpose(img, in_place=True)
        rgb = _to_rgb(img)
        resized = rgb.resize((width, height), Image.Resampling.BILINEAR)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"The image is a decompression bomb: {exc}") from exc
    except _DECODE_FAILURES as exc:
        raise ImageDecodeError(
            f"The {seen} cannot be decoded: {exc}. It is probably truncated or corrupt; "
            "re-export it and upload it again."
        ) from exc
    return np.asarray(resized, dtype=np.uint8)


def _open_checked(data: bytes, *, max_pixels: int) -> Image.Image:
    """Read only the header: refuse unsupported formats and too many pixels before decoding."""
    try:
        img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"The image header claims too many pixels ({exc}). Resize the image to at most "
            f"{max_pixels:,} pixels and upload it again."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            f"The file ({len(data):,} bytes, starting {data[:8]!r}) is not a supported image. "
            "Upload a JPEG, PNG, GIF, WebP, BMP or TIFF file."
        ) from exc
    except _DECODE_FAILURES as exc:
        raise ImageDecodeError(
            f"The image header is corrupt ({exc}). Re-export the image and upload it again."
        ) from exc
    img_width, img_height = img.size
    pixels = img_width * img_height
    if pixels > max_pixels:
        raise ImageTooLargeError(
            f"The {img.format} image is {img_width}x{img_height} ({pixels:,} pixels); the limit is "
            f"{max_pixels:,} pixels. Resize it (e.g. to at most 4000 x 4000) and upload it again."
        )
    if pixels == 0:
        raise ImageDecodeError(f"The {img.format} image has no pixels ({img_width}x{img_height}).")
    return img


def _check_decode_size(img: Image.Image, max_decode_pixels: int | None) -> None:
    width, height = img.size  # after draft: what the decoder will really allocate
    if max_decode_pixels is not None and width * height > max_decode_pixels:
        raise ImageTooLargeError(
            f"The {img.format} image decodes to {width}x{height} ({width * height:,} pixels); "
            f"this request may decode at most {max_decode_pixels:,}. Resize it (e.g. to at most "
            "3000 x 3000, or send it as JPEG) and upload it again."
        )


def _draft_for_target(img: Image.Image, *, height: int, width: int) -> None:
    """Ask the JPEG decoder for the smallest DCT scale still >= ``source_size`` of the target.

    The target is in display orientation, the decoder works on stored orientation, so the axes
    swap for EXIF orientations 5-8. Pillow picks scale 1/2/4/8 with floor(side/scale) >= request,
    so the reduced image never drops below the requested size.
    """
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except _DECODE_FAILURES:
        orientation = 1  # Broken EXIF: exif_transpose will skip it too; draft conservatively.
    if orientation in _ORIENTATIONS_SWAPPING_AXES:
        height, width = width, height
    draft_height, draft_width = source_size((height, width))
    img.draft("RGB", (draft_width, draft_height))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited on white (a product backdrop)."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _high_depth_to_l(img)
    if "transparency" in img.info:
        img = img.convert("RGBA")  # Palette/tRNS transparency becomes a real alpha channel.
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode == "RGB":
        return img  # convert() would copy the whole decoded frame for nothing
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV.


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float greyscale to 8 bits; Pillow's convert("L") clips instead.

    Integer modes are read as 16-bit (0-65535 -> 0-255, dividing by 257 so 65535 maps to 255).
    Float images in [0, 1] are scaled by 255; other float images are clipped to 0-255.
    """
    values = np.asarray(img)
    if img.mode == "F":
        finite = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
        in_unit_range = finite.size and finite.min() >= 0.0 and finite.max() <= 1.0
        scaled = finite * 255.0 if in_unit_range else finite
    else:
        scaled = values.astype(np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def decode_images(
    items: Sequence[bytes], *, size: tuple[int, int], **decode_kwargs
) -> tuple[np.ndarray, list[ImageError | None]]:
    """Decode a batch; one bad image never stops the others.

    Args:
        items: Encoded image files.
        size: Target ``(height, width)``.
        **decode_kwargs: Passed to :func:`decode_image` (limits, ``allow_draft``).

    Returns:
        ``(N, height, width, 3)`` ``uint8`` array (zeros in failed rows) and a list of N entries,
        ``None`` for a good row or the :class:`ImageError` that row failed with.
    """
    height, width = size
    batch = np.zeros((len(items), height, width, 3), dtype=np.uint8)
    errors: list[ImageError | None] = []
    for row, data in enumerate(items):
        try:
            batch[row] = decode_image(data, size=size, **decode_kwargs)
        except ImageError as exc:
            errors.append(exc)
        else:
            errors.append(None)
    return batch, errors


def to_model_input(
    batch: np.ndarray,
    contract: InputContract,
    *,
    input_dtype=np.float32,
    quantization: tuple[float, int] | None = None,
) -> np.ndarray:
    """Turn decoded uint8 pixels into exactly what the model's input tensor holds.

    This is the only dtype/scale conversion on the inference side. For the default contract it
    is a plain cast to float32 (raw 0-255; the graph rescales). A contract may declare another
    ``value_range`` and ``mean``/``std``; they are applied here and nowhere else. For a full-int8
    model the real values are then quantised with the tensor's ``(scale, zero_point)``.

    Args:
        batch: ``(N, height, width, 3)`` ``uint8`` from :func:`decode_images`.
        contract: The model's stored input contract.
        input_dtype: The input tensor's dtype (``np.float32``, ``np.uint8`` or ``np.int8``).
        quantization: The input tensor's ``(scale, zero_point)``; ``None`` or scale 0 means not
            quantised.

    Returns:
        Array of ``input_dtype`` with the batch's shape.

    Raises:
        ValueError: The batch is not uint8 of the contract's shape, or an integer input tensor
            has no quantisation parameters while the contract needs rescaling.
    """
    expected = (contract.height, contract.width, contract.channels)
    if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != expected:
        raise ValueError(
            f"Expected a uint8 batch of shape (N, {expected[0]}, {expected[1]}, {expected[2]}), "
            f"got {batch.dtype} {batch.shape}; decode with decode_images(size=contract.size)."
        )
    real = _apply_contract_scaling(batch, contract)
    dtype = np.dtype(input_dtype)
    if dtype == np.float32:
        return real.astype(np.float32)
    if dtype not in (np.uint8, np.int8):
        raise ValueError(f"Unsupported input tensor dtype {dtype}; use float32, uint8 or int8.")
    scale, zero_point = quantization if quantization else (0.0, 0)
    if not scale:
        # Unquantised integer input: only raw uint8 pixels can be fed as they are.
        if dtype != np.uint8 or real is not batch:
            raise ValueError(
                f"The {dtype} input tensor has no quantisation parameters, so raw pixels cannot "
                "be mapped onto it; re-export the model with a quantised or float32 input."
            )
        return batch.copy()
    info = np.iinfo(dtype)
    quantised = np.rint(real / scale + zero_point)
    return np.clip(quantised, info.min, info.max).astype(dtype)


def _apply_contract_scaling(batch: np.ndarray, contract: InputContract) -> np.ndarray:
    """Map 0-255 to the contract's real values; returns ``batch`` itself when that is identity."""
    low, high = contract.value_range
    identity_range = (low, high) == (0.0, 255.0)
    if identity_range and contract.mean is None and contract.std is None:
        return batch
    real = batch.astype(np.float32)
    if not identity_range:
        real = real * np.float32((high - low) / 255.0) + np.float32(low)
    if contract.mean is not None:
        real = real - np.asarray(contract.mean, dtype=np.float32)
    if contract.std is not None:
        real = real / np.asarray(contract.std, dtype=np.float32)
    return real
