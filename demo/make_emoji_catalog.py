"""Generate the offline demo catalog: emoji rendered as small "product photos" in shop categories.

The demo must show a real, classifiable catalog without network access or a photo licence, so
each product image is a Noto Color Emoji glyph (SIL OFL 1.1) on a light, product-photo-like
background with seeded jitter. Categories come from Unicode's emoji-test.txt subgroups. The
output is deterministic for a given seed, font file and Pillow build, so it is committed and a
test can regenerate one category and compare bytes.

Usage:
    python demo/make_emoji_catalog.py                      # rewrite demo/catalog/
    python demo/make_emoji_catalog.py --out /tmp/c --only musical-instruments

Needs only Pillow and the Debian packages fonts-noto-color-emoji and unicode-data.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import PIL
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST_PATH = Path("/usr/share/unicode/emoji/emoji-test.txt")
DEFAULT_OUT = Path(__file__).resolve().parent / "catalog"

# Noto Color Emoji is a CBDT bitmap font with one strike; FreeType only renders it at this size.
FONT_SIZE = 109
# Small enough to keep a few hundred JPEGs under ~3 MB, big enough for a 96-224 px model input.
IMAGE_SIZE = 160
JPEG_QUALITY = 85
DEFAULT_VARIANTS = 3
DEFAULT_SEED = 20240607
# Caps every category at the same number of distinct emoji so the classes are balanced and the
# whole catalog stays at a few hundred images (clothing alone has 47 emoji).
DEFAULT_MAX_EMOJI = 16
# Share of each category's emoji the shop already sells and has sorted; the rest are new kinds of
# product the classifier has never seen. Of a sorted emoji, every variant but the last is
# labelled: the last is a new colour variant that just arrived, as shops get all the time.
LABELLED_SHARE = 0.6

# Emoji whose subgroup fits but which no shop of that category would sell (weapons among the
# "tool" subgroup, building fixtures among "household").
EXCLUDED_NAMES = frozenset({
    "dagger", "crossed swords", "water pistol", "bow and arrow", "shield", "boomerang", "bomb",
    "elevator", "shopping cart",
})

SKIN_TONES = range(0x1F3FB, 0x1F400)
ZWJ = 0x200D
VARIATION_SELECTOR_16 = 0xFE0F


@dataclass(frozen=True)
class Category:
    slug: str
    name: str
    description: str
    parent_slug: str
    subgroups: tuple[str, ...]
    sku_prefix: str


# Parents first: importers can create rows in file order.
CATEGORIES = (
    Category("food", "Food & drink", "Groceries, meals and beverages.", "", (), ""),
    Category("fruit", "Fruit", "Fresh fruit.", "food", ("food-fruit",), "FRU"),
    Category("vegetables", "Vegetables", "Fresh vegetables, herbs and nuts.", "food",
             ("food-vegetable",), "VEG"),
    Category("prepared-food", "Prepared food", "Ready meals, bakery and takeaway dishes.",
             "food", ("food-prepared", "food-asian"), "PRE"),
    Category("drinks", "Drinks", "Hot and cold beverages.", "food", ("drink",), "DRK"),
    Category("clothing", "Clothing", "Clothes, shoes and accessories.", "", ("clothing",), "CLO"),
    Category("musical-instruments", "Musical instruments", "Instruments for making music.", "",
             ("musical-instrument",), "MUS"),
    Category("sports", "Sports", "Balls, rackets and sports equipment.", "", ("sport",), "SPO"),
    Category("tools", "Tools", "Hand tools, hardware and workshop gear.", "", ("tool",), "TOO"),
    Category("household", "Household", "Furniture, bathroom and cleaning supplies.", "",
             ("household",), "HOU"),
)


@dataclass(frozen=True)
class Emoji:
    codepoints: tuple[int, ...]
    name: str

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    @property
    def render_text(self) -> str:
        # FE0F only asks for emoji presentation, which a colour-only font gives anyway; dropping
        # it lets the basic layout engine (no libraqm) draw the glyph at one advance width.
        return "".join(chr(cp) for cp in self.codepoints if cp != VARIATION_SELECTOR_16)


def read_emoji_by_subgroup(path: Path) -> dict[str, list[Emoji]]:
    """Return fully-qualified emoji per subgroup, in the file's CLDR order.

    Skin-tone variants and ZWJ sequences are left out: they repeat a base emoji or need
    glyph composition the basic layout engine does not do. EXCLUDED_NAMES are left out too.
    """
    by_subgroup: dict[str, list[Emoji]] = {}
    subgroup = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
            continue
        match = re.match(r"^([0-9A-F ]+?)\s*; fully-qualified\s*# \S+ E\d+\.\d+ (.+)$", line)
        if not match:
            continue
        codepoints = tuple(int(cp, 16) for cp in match.group(1).split())
        if ZWJ in codepoints or any(cp in SKIN_TONES for cp in codepoints):
            continue
        if match.group(2) in EXCLUDED_NAMES:
            continue
        by_subgroup.setdefault(subgroup, []).append(Emoji(codepoints, match.group(2)))
    return by_subgroup


def render_glyph(font: ImageFont.FreeTypeFont, emoji: Emoji) -> Image.Image | None:
    """Draw one emoji on a transparent canvas, cropped to its pixels; None if it is blank.

    A glyph the font lacks draws nothing (no tofu box in this font), and a sequence the font
    cannot form draws several glyphs side by side; both are rejected.
    """
    text = emoji.render_text
    right, bottom = font.getbbox(text)[2:]
    canvas = Image.new("RGBA", (right + 8, bottom + 8), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((0, 0), text, font=font, embedded_color=True)
    glyph_box = canvas.getchannel("A").getbbox()
    single_advance = font.getbbox("\U0001F34E")[2]
    if glyph_box is None or right > single_advance:
        return None
    return canvas.crop(glyph_box)


def light_background(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Pick a pale top colour and a slightly darker bottom one, like a studio sweep."""
    base = [rng.randint(222, 252) for _ in range(3)]
    top = tuple(min(255, channel + 3) for channel in base)
    bottom = tuple(max(0, channel - rng.randint(8, 22)) for channel in base)
    return top, bottom  # type: ignore[return-value]


def make_photo(glyph: Image.Image, rng: random.Random) -> Image.Image:
    """Compose one product photo: gradient backdrop, soft shadow, jittered glyph."""
    top, bottom = light_background(rng)
    gradient = Image.linear_gradient("L").resize((IMAGE_SIZE, IMAGE_SIZE))
    size = (IMAGE_SIZE, IMAGE_SIZE)
    photo = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), gradient)

    target = round(IMAGE_SIZE * rng.uniform(0.62, 0.80))
    scale = target / max(glyph.size)
    item = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))),
                        Image.Resampling.LANCZOS)
    item = item.rotate(rng.uniform(-14.0, 14.0), Image.Resampling.BICUBIC, expand=True)

    x = (IMAGE_SIZE - item.width) // 2 + rng.randint(-10, 10)
    y = (IMAGE_SIZE - item.height) // 2 + rng.randint(-8, 8)
    shadow_alpha = item.getchannel("A").point(lambda a: a * 45 // 255)
    shadow = Image.new("RGBA", item.size, (40, 40, 40, 0))
    shadow.putalpha(shadow_alpha)
    shadow = shadow.filter(ImageFilter.GaussianBlur(4))
    photo.paste(shadow, (x + 4, y + 6), shadow)
    photo.paste(item, (x, y), item)
    return photo


def pick_emoji(category: Category, renderable: list[Emoji], *, seed: int,
               max_emoji: int) -> tuple[list[Emoji], set[Emoji]]:
    """Choose the category's emoji and which of them the shop has sorted.

    An unsorted emoji is a new kind of product: none of its variants is labelled, so the
    classifier meets it unseen. A sorted emoji's variants are labelled except the last (a new
    arrival of a product the shop knows). Each choice has its own string-seeded RNG, so changing
    one category or the variant count does not reshuffle the others.
    """
    chosen = renderable
    if len(renderable) > max_emoji:
        picked = set(random.Random(f"{seed}:{category.slug}:pick").sample(renderable, max_emoji))
        chosen = [emoji for emoji in renderable if emoji in picked]  # keep CLDR order
    n_labelled = min(len(chosen) - 1, max(1, round(len(chosen) * LABELLED_SHARE)))
    labelled = set(random.Random(f"{seed}:{category.slug}:label").sample(chosen, n_labelled))
    return chosen, labelled


def build_category(category: Category, emoji: list[Emoji], labelled: set[Emoji],
                   glyphs: dict[Emoji, Image.Image], *, out: Path, seed: int,
                   variants: int) -> list[dict[str, str]]:
    """Write one category's JPEGs (replacing any old ones) and return its catalog rows."""
    folder = out / "images" / category.slug
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rows = []
    for item in emoji:
        rng = random.Random(f"{seed}:{category.slug}:{item.slug}")
        code = "-".join(f"{cp:X}" for cp in item.codepoints if cp != VARIATION_SELECTOR_16)
        for n in range(1, variants + 1):
            relative = f"images/{category.slug}/{item.slug}-{n}.jpg"
            known = item in labelled and (n < variants or variants == 1)
            make_photo(glyphs[item], rng).save(out / relative, "JPEG", quality=JPEG_QUALITY,
                                               optimize=True)
            rows.append({
                "sku": f"{category.sku_prefix}-{code}-{n}",
                "title": f"{item.name[:1].upper()}{item.name[1:]}, variant {n}",
                "category_slug": category.slug,
                "image": relative,
                "labelled": "1" if known else "0",
                # The shop sells what its staff have sorted; new arrivals (unlabelled, left to
                # the classifier) stay drafts until someone reviews and publishes them.
                "published": "1" if known else "0",
            })
    return rows


CATALOG_COLUMNS = ("sku", "title", "category_slug", "image", "labelled", "published")
CATEGORY_COLUMNS = ("slug", "name", "description", "parent_slug")

LICENSE_TEXT = """\
# Licences for the demo catalog

The images under `images/` are derived renderings made by `demo/make_emoji_catalog.py`: each
is one glyph of **Noto Color Emoji** drawn with Pillow on a generated background, scaled,
rotated and saved as JPEG.

## Noto Color Emoji

Copyright 2013 Google LLC (Noto Color Emoji, https://github.com/googlefonts/noto-emoji), from
the Debian package `fonts-noto-color-emoji`. Licensed under the **SIL Open Font License,
Version 1.1** (https://openfontlicense.org). The OFL allows using the font to make images;
these renderings are not the font and are not font software.

## Unicode emoji data

Category groupings and emoji names come from `emoji-test.txt` (Unicode Emoji, from the Debian
package `unicode-data`), Copyright © Unicode, Inc. Used under the **Unicode License v3**
(Unicode Data Files and Software License, https://www.unicode.org/license.txt).

## The catalog files

`catalog.csv`, `categories.csv` and the generator are part of this project and share its
licence. `provenance.json` records the font hash, emoji data version and settings used.
"""


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_metadata(out: Path, rows: list[dict[str, str]], *, args: argparse.Namespace) -> None:
    """Write the CSVs, the licence note and the provenance record next to the images."""
    write_csv(out / "catalog.csv", CATALOG_COLUMNS, rows)
    write_csv(out / "categories.csv", CATEGORY_COLUMNS, [
        {"slug": c.slug, "name": c.name, "description": c.description,
         "parent_slug": c.parent_slug} for c in CATEGORIES
    ])
    (out / "LICENSE.md").write_text(LICENSE_TEXT, encoding="utf-8")
    header = EMOJI_TEST_PATH.read_text(encoding="utf-8")[:600]
    provenance = {
        "font_sha256": hashlib.sha256(FONT_PATH.read_bytes()).hexdigest(),
        "emoji_test_version": re.search(r"# Version: (\S+)", header).group(1),
        "pillow_version": PIL.__version__,
        "seed": args.seed,
        "variants": args.variants,
        "max_emoji": args.max_emoji,
        "only": args.only,
        "images": len(rows),
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n",
                                         encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    leaf_slugs = [c.slug for c in CATEGORIES if c.subgroups]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder (default: demo/catalog next to this script)")
    parser.add_argument("--variants", type=int, default=DEFAULT_VARIANTS,
                        help="photos per emoji (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--max-emoji", type=int, default=DEFAULT_MAX_EMOJI,
                        help="distinct emoji per category at most (default: %(default)s)")
    parser.add_argument("--only", choices=leaf_slugs,
                        help="make just this category (catalog.csv then lists only it)")
    args = parser.parse_args(argv)
    if args.variants < 1 or args.max_emoji < 2:
        parser.error("--variants must be at least 1 and --max-emoji at least 2")
    if args.only and args.out.resolve() == DEFAULT_OUT:
        parser.error("--only writes a one-category catalog.csv; give --out another folder")
    for path, package in ((FONT_PATH, "fonts-noto-color-emoji"), (EMOJI_TEST_PATH, "unicode-data")):
        if not path.exists():
            parser.error(f"{path} is missing; install it with: apt-get install -y {package}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # BASIC layout: output must not depend on whether this Pillow build has libraqm.
    font = ImageFont.truetype(str(FONT_PATH), FONT_SIZE, layout_engine=ImageFont.Layout.BASIC)
    by_subgroup = read_emoji_by_subgroup(EMOJI_TEST_PATH)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    for category in CATEGORIES:
        if not category.subgroups or (args.only and category.slug != args.only):
            continue
        candidates = [e for subgroup in category.subgroups for e in by_subgroup.get(subgroup, [])]
        glyphs = {e: glyph for e in candidates if (glyph := render_glyph(font, e)) is not None}
        renderable = [e for e in candidates if e in glyphs]
        emoji, labelled = pick_emoji(category, renderable, seed=args.seed,
                                     max_emoji=args.max_emoji)
        made = build_category(category, emoji, labelled, glyphs, out=args.out, seed=args.seed,
                              variants=args.variants)
        rows.extend(made)
        print(f"{category.slug:20} {len(emoji):3} emoji ({len(labelled)} labelled, "
              f"{len(candidates) - len(renderable)} blank skipped) -> {len(made)} images")
    write_metadata(args.out, rows, args=args)
    print(f"wrote {len(rows)} images and catalog.csv to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
