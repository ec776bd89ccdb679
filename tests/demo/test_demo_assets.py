"""Checks on the committed demo catalog and bad-image corpus, and that their generators match.

Plain pytest, no Django: run with `pytest -p no:django tests/demo`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import struct
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import PIL
import pytest
from PIL import Image, ImageOps, UnidentifiedImageError

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "demo" / "catalog"
CATALOG_SCRIPT = REPO / "demo" / "make_emoji_catalog.py"
FIXTURES = REPO / "tests" / "fixtures" / "images"
FIXTURE_SCRIPT = REPO / "tests" / "fixtures" / "make_images.py"
FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")

CATALOG_COLUMNS = ["sku", "title", "category_slug", "image", "labelled", "published"]
CATEGORY_COLUMNS = ["slug", "name", "description", "parent_slug"]
MIN_CATEGORIES = 8
MIN_IMAGES_PER_CATEGORY = 20
# The demo ships in the repo; a few MB keeps clones fast.
MAX_CATALOG_BYTES = 3 * 1024 * 1024
MAX_FIXTURE_BYTES = 1536 * 1024
# The smallest category regenerates in well under a second.
REGENERATED_CATEGORY = "musical-instruments"


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def emoji_key(image: str) -> str:
    """`images/fruit/red-apple-2.jpg` -> `images/fruit/red-apple`: the emoji behind a variant."""
    return re.sub(r"-\d+\.jpg$", "", image)


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def catalog_rows() -> list[dict[str, str]]:
    columns, rows = read_csv(CATALOG / "catalog.csv")
    assert columns == CATALOG_COLUMNS
    return rows


@pytest.fixture(scope="module")
def categories() -> dict[str, dict[str, str]]:
    columns, rows = read_csv(CATALOG / "categories.csv")
    assert columns == CATEGORY_COLUMNS
    return {row["slug"]: row for row in rows}


# --- demo catalog -------------------------------------------------------------------------


def test_every_catalog_image_exists_and_decodes_to_160px_rgb(catalog_rows):
    assert catalog_rows
    for row in catalog_rows:
        with Image.open(CATALOG / row["image"]) as image:
            image.load()
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (160, 160)), row


def test_skus_and_image_paths_are_unique(catalog_rows):
    assert len({row["sku"] for row in catalog_rows}) == len(catalog_rows)
    assert len({row["image"] for row in catalog_rows}) == len(catalog_rows)


def test_image_folder_holds_exactly_the_catalog_images(catalog_rows):
    on_disk = {p.relative_to(CATALOG).as_posix() for p in (CATALOG / "images").rglob("*.jpg")}
    assert on_disk == {row["image"] for row in catalog_rows}


def test_categories_referenced_by_rows_and_parents_exist(catalog_rows, categories):
    assert {row["category_slug"] for row in catalog_rows} <= set(categories)
    parents = {row["parent_slug"] for row in categories.values()} - {""}
    assert parents <= set(categories)
    assert parents, "the tree should have at least one parent category"


def test_enough_categories_each_with_enough_images(catalog_rows):
    per_category = Counter(row["category_slug"] for row in catalog_rows)
    assert len(per_category) >= MIN_CATEGORIES
    assert min(per_category.values()) >= MIN_IMAGES_PER_CATEGORY, per_category


def test_every_category_has_labelled_and_unlabelled_rows(catalog_rows):
    flags = defaultdict(set)
    for row in catalog_rows:
        flags[row["category_slug"]].add(row["labelled"])
    assert all(seen == {"0", "1"} for seen in flags.values()), dict(flags)


def test_demo_publishes_the_sorted_products_and_keeps_new_arrivals_as_drafts(catalog_rows):
    published = Counter((row["labelled"], row["published"]) for row in catalog_rows)
    assert set(published) == {("1", "1"), ("0", "0")}, published
    assert published[("1", "1")] > len(catalog_rows) / 3


def test_new_arrivals_are_new_variants_of_known_products_and_new_kinds(catalog_rows):
    """A known emoji has every variant but its last labelled; a new kind has none labelled."""
    variants = defaultdict(list)
    for row in sorted(catalog_rows, key=lambda r: r["image"]):
        variants[emoji_key(row["image"])].append(row["labelled"])
    known = {key for key, flags in variants.items() if "1" in flags}
    assert all(variants[key][-1] == "0" and set(variants[key][:-1]) == {"1"} for key in known)
    new_kinds = set(variants) - known
    assert all(set(variants[key]) == {"0"} for key in new_kinds)
    assert len(known) > len(new_kinds) > 0
    assert all(len(flags) >= 2 for flags in variants.values()), (
        "every emoji should have at least two photo variants")


def test_demo_catalog_folder_stays_small():
    assert folder_bytes(CATALOG) < MAX_CATALOG_BYTES


def test_generator_reproduces_committed_category_byte_for_byte(tmp_path, catalog_rows):
    provenance = json.loads((CATALOG / "provenance.json").read_text(encoding="utf-8"))
    for path, package in ((FONT, "fonts-noto-color-emoji"), (EMOJI_TEST, "unicode-data")):
        if not path.exists():
            pytest.skip(f"{path} missing: apt-get install -y {package} (.ci/run does)")
    if hashlib.sha256(FONT.read_bytes()).hexdigest() != provenance["font_sha256"]:
        pytest.skip("installed Noto Color Emoji differs from the one the catalog was made with")
    assert PIL.__version__ == provenance["pillow_version"], (
        "Pillow changed since the catalog was made: rerun demo/make_emoji_catalog.py and commit")

    subprocess.run(
        [sys.executable, str(CATALOG_SCRIPT), "--out", str(tmp_path), "--only",
         REGENERATED_CATEGORY, "--seed", str(provenance["seed"]),
         "--variants", str(provenance["variants"]), "--max-emoji", str(provenance["max_emoji"])],
        check=True, capture_output=True,
    )

    expected = [row for row in catalog_rows if row["category_slug"] == REGENERATED_CATEGORY]
    assert read_csv(tmp_path / "catalog.csv")[1] == expected
    made = sorted((tmp_path / "images").rglob("*.jpg"))
    assert len(made) == len(expected)
    for path in made:
        relative = path.relative_to(tmp_path)
        assert path.read_bytes() == (CATALOG / relative).read_bytes(), relative


# --- bad-image fixture corpus -------------------------------------------------------------


def open_fixture(name: str) -> Image.Image:
    return Image.open(FIXTURES / name)


def assert_near(pixel, expected, tolerance=8):
    assert all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True)), pixel


def test_every_fixture_listed_in_readme_exists():
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`([\w.-]+\.(?:jpg|png|gif|webp))`", readme))
    on_disk = {path.name for path in FIXTURES.iterdir() if path.name != "README.md"}
    assert listed == on_disk


def test_fixture_folder_stays_small():
    assert folder_bytes(FIXTURES) < MAX_FIXTURE_BYTES


def test_zero_bytes_and_text_files_are_not_images():
    assert (FIXTURES / "zero-bytes.jpg").stat().st_size == 0
    for name in ("zero-bytes.jpg", "text.jpg"):
        with pytest.raises(UnidentifiedImageError):
            open_fixture(name)


def test_truncated_jpeg_opens_but_fails_to_decode():
    with open_fixture("truncated.jpg") as image:
        assert image.format == "JPEG"
        with pytest.raises(OSError, match="truncated"):
            image.load()


def test_jpeg_named_png_is_really_a_jpeg():
    with open_fixture("jpeg-named.png") as image:
        assert image.format == "JPEG"


def test_pixel_bomb_header_claims_over_a_billion_pixels_in_a_small_file():
    data = (FIXTURES / "pixel-bomb.png").read_bytes()
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width * height > 1e9
    assert len(data) < 200 * 1024
    with pytest.raises(Image.DecompressionBombError):
        open_fixture("pixel-bomb.png")


def test_cmyk_jpeg_is_cmyk_and_converts_to_red():
    with open_fixture("cmyk.jpg") as image:
        assert image.mode == "CMYK"
        assert_near(image.convert("RGB").getpixel((24, 24)), (255, 0, 0))


def test_grey16_png_is_16_bit_mid_grey():
    with open_fixture("grey16.png") as image:
        assert image.mode == "I;16"
        assert image.getpixel((24, 24)) == 32768


def test_palette_png_has_a_transparent_index():
    with open_fixture("palette-transparent.png") as image:
        assert image.mode == "P"
        assert image.info["transparency"] == 0
        rgba = image.convert("RGBA")
    assert rgba.getpixel((2, 24))[3] == 0
    assert rgba.getpixel((45, 24)) == (0, 255, 0, 255)


def test_alpha_png_has_transparent_corners_and_opaque_red_centre():
    with open_fixture("alpha.png") as image:
        assert image.mode == "RGBA"
        assert image.getpixel((0, 0))[3] == 0
        assert image.getpixel((24, 24)) == (255, 0, 0, 255)


def test_animated_gif_has_red_then_blue_frames():
    with open_fixture("animated.gif") as image:
        assert image.n_frames >= 2
        assert_near(image.convert("RGB").getpixel((24, 24)), (255, 0, 0))
        image.seek(1)
        assert_near(image.convert("RGB").getpixel((24, 24)), (0, 0, 255))


def test_exif_rotated_jpeg_shows_red_on_top_once_transposed():
    with open_fixture("exif-rotated.jpg") as image:
        assert image.getexif()[0x0112] == 6
        assert image.size == (64, 48)
        upright = ImageOps.exif_transpose(image)
    assert upright.size == (48, 64)
    assert_near(upright.getpixel((24, 8)), (255, 0, 0))
    assert_near(upright.getpixel((24, 56)), (0, 0, 255))


def test_webp_fixture_is_webp():
    with open_fixture("photo.webp") as image:
        image.load()
        assert image.format == "WEBP"


@pytest.mark.parametrize(("name", "colour"), [
    ("red.jpg", (255, 0, 0)), ("green.jpg", (0, 255, 0)), ("blue.jpg", (0, 0, 255)),
])
def test_solid_colour_jpegs_are_48px_and_that_colour(name, colour):
    with open_fixture(name) as image:
        assert (image.mode, image.size) == ("RGB", (48, 48))
        assert_near(image.getpixel((24, 24)), colour)


def test_large_photo_is_1600x1200_jpeg_under_600_kb():
    assert (FIXTURES / "large-photo.jpg").stat().st_size < 600 * 1024
    with open_fixture("large-photo.jpg") as image:
        assert (image.format, image.size) == ("JPEG", (1600, 1200))


def test_fixture_script_reproduces_committed_files_byte_for_byte(tmp_path):
    subprocess.run([sys.executable, str(FIXTURE_SCRIPT), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    made = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    committed = {path.name: path.read_bytes() for path in FIXTURES.iterdir()
                 if path.name != "README.md"}
    assert made.keys() == committed.keys()
    changed = [name for name in made if made[name] != committed[name]]
    assert not changed, f"rerun {FIXTURE_SCRIPT.name} and commit: {changed}"
