"""Tests for classifier.preprocessing: decoding untrusted images and building model input."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from classifier.exceptions import (
    ImageDecodeError,
    ImageEmptyError,
    ImageTooLargeError,
    ModelContractError,
)
from classifier.preprocessing import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    InputContract,
    decode_image,
    decode_images,
    to_model_input,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
EXIF_ORIENTATION = 0x0112


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A few-hundred-byte PNG whose header claims ``width x height`` but holds almost no data.

    Decoding it would fail as truncated, so an ImageTooLargeError proves the pixel check ran on
    the header, before any decode or allocation of the claimed image.
    """

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def photo_like_jpeg(width: int, height: int, *, exif: Image.Exif | None = None) -> bytes:
    """A JPEG with smooth gradients plus sensor-like noise, closer to a photo than a flat fill."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    channels = np.stack(
        [
            127 + 100 * np.sin(x / 37.0) * np.cos(y / 53.0),
            127 + 100 * np.cos((x + y) / 71.0),
            x * 255.0 / width,
        ],
        axis=-1,
    )
    pixels = np.clip(channels + rng.normal(0, 12, channels.shape), 0, 255).astype(np.uint8)
    params = {"quality": 90}
    if exif is not None:
        params["exif"] = exif
    return encode(Image.fromarray(pixels), "JPEG", **params)


def assert_close_rgb(pixel, expected, tolerance=8):
    assert np.all(np.abs(np.asarray(pixel, dtype=int) - np.asarray(expected)) <= tolerance), (
        f"{tuple(pixel)} is not within {tolerance} of {expected}"
    )


# --- output shape and resize ------------------------------------------------------------------


def test_decode_returns_uint8_rgb_of_requested_height_and_width():
    data = encode(Image.new("RGB", (50, 40), RED), "PNG")

    pixels = decode_image(data, size=(20, 30))

    assert pixels.shape == (20, 30, 3)
    assert pixels.dtype == np.uint8
    assert_close_rgb(pixels[10, 15], RED, tolerance=0)


def test_resize_squashes_the_whole_image_without_cropping():
    stripes = Image.new("RGB", (300, 50))
    for index, colour in enumerate((RED, GREEN, BLUE)):
        stripes.paste(colour, (index * 100, 0, (index + 1) * 100, 50))

    pixels = decode_image(encode(stripes, "PNG"), size=(9, 9))

    # A centre crop would be all green; squashing keeps all three stripes.
    assert_close_rgb(pixels[4, 0], RED, tolerance=0)
    assert_close_rgb(pixels[4, 4], GREEN, tolerance=0)
    assert_close_rgb(pixels[4, 8], BLUE, tolerance=0)


# --- modes ------------------------------------------------------------------------------------


def test_fully_transparent_rgba_becomes_white():
    data = encode(Image.new("RGBA", (8, 8), (255, 0, 0, 0)), "PNG")

    pixels = decode_image(data, size=(4, 4))

    assert np.all(pixels == 255)


def test_half_transparent_red_is_composited_on_white_to_pink():
    data = encode(Image.new("RGBA", (8, 8), (255, 0, 0, 128)), "PNG")

    pixels = decode_image(data, size=(4, 4))

    assert_close_rgb(pixels[0, 0], (255, 127, 127), tolerance=2)


def test_transparent_greyscale_with_alpha_becomes_white():
    data = encode(Image.new("LA", (8, 8), (0, 0)), "PNG")

    assert np.all(decode_image(data, size=(4, 4)) == 255)


def test_palette_transparency_becomes_white_and_opaque_entries_keep_colour():
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    img.paste(1, (0, 0, 4, 8))  # Left half uses entry 1 (red); entry 0 (black) is transparent.

    pixels = decode_image(encode(img, "PNG", transparency=0), size=(8, 8))

    assert_close_rgb(pixels[4, 0], RED, tolerance=0)
    assert_close_rgb(pixels[4, 7], WHITE, tolerance=0)


def test_cmyk_jpeg_red_stays_red():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)

    red, green, blue = decode_image(data, size=(8, 8))[4, 4]

    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (32768, 128), (65535, 255)],
)
def test_16_bit_greyscale_png_scales_to_8_bits(value, expected):
    img = Image.fromarray(np.full((8, 8), value, dtype=np.uint16))
    assert img.mode == "I;16"

    pixels = decode_image(encode(img, "PNG"), size=(4, 4))

    assert np.all(np.abs(pixels.astype(int) - expected) <= 1)


def test_32_bit_integer_greyscale_tiff_is_read_as_16_bit_range():
    img = Image.fromarray(np.full((8, 8), 65535, dtype=np.int32))
    assert img.mode == "I"

    assert np.all(decode_image(encode(img, "TIFF"), size=(4, 4)) == 255)


def test_float_greyscale_tiff_in_unit_range_scales_to_8_bits():
    img = Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32))
    assert img.mode == "F"

    pixels = decode_image(encode(img, "TIFF"), size=(4, 4))

    assert np.all(np.abs(pixels.astype(int) - 128) <= 1)


def test_greyscale_becomes_equal_rgb_channels():
    data = encode(Image.new("L", (8, 8), 100), "PNG")

    assert np.all(decode_image(data, size=(4, 4)) == 100)


def test_bilevel_bmp_becomes_black_and_white_rgb():
    img = Image.new("1", (8, 8), 0)
    img.paste(1, (0, 0, 8, 4))  # Top half white.

    pixels = decode_image(encode(img, "BMP"), size=(8, 8))

    assert_close_rgb(pixels[0, 0], WHITE, tolerance=0)
    assert_close_rgb(pixels[7, 0], (0, 0, 0), tolerance=0)


def test_exif_orientation_6_rotates_image_upright():
    # Stored landscape: red left, blue right. Orientation 6 means "rotate 90 degrees clockwise to
    # display", so the displayed image is portrait with red on top and blue at the bottom.
    img = Image.new("RGB", (40, 20), RED)
    img.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6

    pixels = decode_image(encode(img, "JPEG", quality=95, exif=exif), size=(40, 20))

    assert_close_rgb(pixels[2, 10], RED)
    assert_close_rgb(pixels[37, 10], BLUE)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2

    pixels = decode_image(data, size=(4, 4))

    assert_close_rgb(pixels[2, 2], RED, tolerance=0)


def test_webp_with_alpha_is_supported():
    data = encode(Image.new("RGBA", (8, 8), (0, 0, 255, 0)), "WEBP", lossless=True)

    assert np.all(decode_image(data, size=(4, 4)) == 255)


# --- JPEG draft parity ------------------------------------------------------------------------

# Draft decoding (DCT scaling to >= 1.5x the target) then the same antialiased resize differs from
# a full decode only by rounding in the IDCT and the extra resample step. Measured on photo-like
# JPEGs: mean absolute difference 0.2-0.3 grey levels, max 3. The bounds leave room for libjpeg
# builds while still catching a wrong scale (which gives tens of levels of blur/aliasing).
DRAFT_MEAN_TOLERANCE = 1.0
DRAFT_MAX_TOLERANCE = 8


@pytest.mark.parametrize(
    ("image_size", "target"),
    [((800, 600), (32, 32)), ((1600, 1200), (224, 224)), ((800, 600), (100, 40))],
)
def test_jpeg_draft_decode_closely_matches_full_decode(image_size, target):
    data = photo_like_jpeg(*image_size)

    drafted = decode_image(data, size=target).astype(int)
    full = decode_image(data, size=target, allow_draft=False).astype(int)

    difference = np.abs(drafted - full)
    assert not np.array_equal(drafted, full), "draft mode was not used"
    assert difference.mean() <= DRAFT_MEAN_TOLERANCE
    assert difference.max() <= DRAFT_MAX_TOLERANCE


def test_jpeg_draft_respects_exif_rotation_when_choosing_scale():
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    data = photo_like_jpeg(1200, 400, exif=exif)  # Displayed as 400 wide, 1200 tall.

    drafted = decode_image(data, size=(120, 40)).astype(int)
    full = decode_image(data, size=(120, 40), allow_draft=False).astype(int)

    assert drafted.shape == (120, 40, 3)
    assert np.abs(drafted - full).mean() <= DRAFT_MEAN_TOLERANCE


# --- bad input --------------------------------------------------------------------------------


def test_zero_bytes_raise_image_empty_error():
    with pytest.raises(ImageEmptyError):
        decode_image(b"", size=(8, 8))


def test_more_bytes_than_the_limit_raise_image_too_large_before_decoding():
    data = b"\xff\xd8\xff" + bytes(MAX_IMAGE_BYTES)

    with pytest.raises(ImageTooLargeError, match="bytes"):
        decode_image(data, size=(8, 8))


def test_caller_can_set_a_stricter_byte_limit():
    data = encode(Image.new("RGB", (64, 64), RED), "PNG")

    with pytest.raises(ImageTooLargeError):
        decode_image(data, size=(8, 8), max_bytes=len(data) - 1)


def test_header_claiming_more_pixels_than_our_limit_raises_without_decoding():
    # 8000 x 8000 = 64 MP: above our 50 MP limit but below Pillow's own bomb threshold, so only
    # our check can stop it; the body is truncated, so a decode would give ImageDecodeError.
    data = png_header_only(8000, 8000)
    assert 8000 * 8000 > MAX_IMAGE_PIXELS
    assert len(data) < 1000

    with pytest.raises(ImageTooLargeError, match="64,000,000 pixels"):
        decode_image(data, size=(8, 8))


def test_giant_pixel_bomb_raises_image_too_large():
    data = png_header_only(30000, 30000)

    with pytest.raises(ImageTooLargeError):
        decode_image(data, size=(8, 8))


def test_pixel_limit_holds_even_when_pillow_global_limit_is_disabled(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)

    with pytest.raises(ImageTooLargeError, match="900,000,000 pixels"):
        decode_image(png_header_only(30000, 30000), size=(8, 8))


def test_truncated_jpeg_raises_image_decode_error():
    data = photo_like_jpeg(200, 150)

    with pytest.raises(ImageDecodeError, match="JPEG"):
        decode_image(data[: len(data) // 2], size=(8, 8))


def test_text_named_jpg_raises_image_decode_error():
    with pytest.raises(ImageDecodeError, match="not a supported image"):
        decode_image(b"this is a text file, not a photo\n", size=(8, 8))


def test_valid_image_of_unsupported_format_raises_image_decode_error():
    data = encode(Image.new("RGB", (8, 8), RED), "PPM")

    with pytest.raises(ImageDecodeError, match="not a supported image"):
        decode_image(data, size=(8, 8))


def test_decode_images_reports_per_item_errors_and_keeps_good_rows():
    good_red = encode(Image.new("RGB", (16, 16), RED), "PNG")
    good_blue = encode(Image.new("RGB", (16, 16), BLUE), "PNG")
    truncated = photo_like_jpeg(64, 64)[:300]

    batch, errors = decode_images([good_red, b"", truncated, good_blue], size=(4, 4))

    assert batch.shape == (4, 4, 4, 3)
    assert batch.dtype == np.uint8
    assert errors[0] is None and errors[3] is None
    assert isinstance(errors[1], ImageEmptyError)
    assert isinstance(errors[2], ImageDecodeError)
    assert np.all(batch[0] == RED) and np.all(batch[3] == BLUE)
    assert not batch[1].any() and not batch[2].any()


def test_error_messages_tell_the_operator_what_to_do():
    with pytest.raises(ImageTooLargeError) as caught:
        decode_image(png_header_only(8000, 8000), size=(8, 8))

    assert "Resize" in caught.value.message
    assert "8000x8000" in caught.value.message


# --- contract ---------------------------------------------------------------------------------


def test_contract_round_trips_through_json_with_lists():
    contract = InputContract(
        height=24, width=32, mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0), value_range=(0.0, 1.0)
    )

    data = json.loads(json.dumps(contract.to_dict()))

    assert data["value_range"] == [0.0, 1.0] and data["mean"] == [1.0, 2.0, 3.0]
    assert InputContract.from_dict(data) == contract
    assert contract.size == (24, 32)


def test_contract_built_from_lists_and_numpy_ints_equals_one_built_from_tuples():
    built = InputContract(height=np.int64(8), width=8, value_range=[0, 1], mean=[0.5, 0.5, 0.5])

    assert built == InputContract(height=8, width=8, value_range=(0.0, 1.0), mean=(0.5,) * 3)
    assert type(built.height) is int
    assert hash(built) == hash(InputContract.from_dict(built.to_dict()))


def test_contract_from_dict_rejects_unknown_fields():
    data = InputContract(height=8, width=8).to_dict() | {"crop": "center"}

    with pytest.raises(ModelContractError, match="crop"):
        InputContract.from_dict(data)


@pytest.mark.parametrize(
    "changes",
    [
        {"resize": "bicubic-crop"},
        {"dtype": "float16"},
        {"channels": 1},
        {"height": 0},
        {"std": (1.0, 0.0, 1.0)},
        {"output": "embedding"},
    ],
)
def test_invalid_contract_raises_model_contract_error(changes):
    with pytest.raises(ModelContractError):
        InputContract(**({"height": 8, "width": 8} | changes))


# --- model input ------------------------------------------------------------------------------


def pixel_batch():
    return np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3) * 2  # Values 0..190.


def test_float_model_input_is_raw_pixels_without_scaling():
    batch = pixel_batch()
    batch[0, 0, 0, 0] = 255

    model_input = to_model_input(batch, InputContract(height=4, width=4))

    assert model_input.dtype == np.float32
    assert model_input.max() == 255.0
    assert np.array_equal(model_input, batch.astype(np.float32))


def test_contract_value_range_and_mean_std_are_applied_once():
    batch = np.full((1, 4, 4, 3), 255, dtype=np.uint8)
    contract = InputContract(
        height=4, width=4, value_range=(-1.0, 1.0), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
    )

    model_input = to_model_input(batch, contract)

    assert np.allclose(model_input, (1.0 - 0.5) / 0.25)


def test_int8_model_input_is_quantised_with_tensor_scale_and_zero_point():
    batch = np.array([0, 1, 128, 255], dtype=np.uint8).reshape(1, 1, 1, 4)[..., :3]
    batch = np.broadcast_to(batch, (1, 4, 4, 3)).copy()
    contract = InputContract(height=4, width=4, dtype="int8")

    model_input = to_model_input(batch, contract, input_dtype=np.int8, quantization=(1.0, -128))

    assert model_input.dtype == np.int8
    assert model_input[0, 0, 0].tolist() == [-128, -127, 0]


def test_quantised_values_are_clipped_to_the_integer_range():
    batch = np.full((1, 4, 4, 3), 255, dtype=np.uint8)
    contract = InputContract(height=4, width=4, dtype="int8")

    model_input = to_model_input(batch, contract, input_dtype=np.int8, quantization=(0.5, 0))

    assert np.all(model_input == 127)


def test_unquantised_uint8_input_receives_raw_pixels():
    batch = pixel_batch()

    model_input = to_model_input(
        batch,
        InputContract(height=4, width=4, dtype="uint8"),
        input_dtype=np.uint8,
        quantization=(0.0, 0),
    )

    assert model_input.dtype == np.uint8 and np.array_equal(model_input, batch)


def test_model_input_rejects_batch_of_wrong_size():
    with pytest.raises(ValueError, match="decode_images"):
        to_model_input(pixel_batch(), InputContract(height=8, width=8))
