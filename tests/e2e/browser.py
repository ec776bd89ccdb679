"""Shared pieces of the browser tests: Chromium settings, screenshots, login, demo CSV rows."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CATALOG = REPO_ROOT / "demo" / "catalog"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "screenshots"
README_SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"

CHROMIUM = "/usr/bin/chromium"
# Playwright's own browser download needs the internet, so the tests drive Debian's Chromium.
# Networking extras are off so the browser never reaches beyond the loopback server.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
# README images stay small so the repository does too.
MAX_SCREENSHOT_BYTES = 300 * 1024
# The pages the README's tour shows; every screenshot is kept as a test artifact, and with
# SAVE_README_SCREENSHOTS=1 these are also written to docs/screenshots/.
README_PAGES = {"dashboard", "changelist-predictions", "job-progress", "review-page",
                "product-page", "model-version-report", "duplicates-page"}
PASSWORD = "e2e-Admin-password-1"


def screenshot(page, name: str) -> Path:
    """Save a screenshot as a test artifact (and for the README when asked)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if os.environ.get("SAVE_README_SCREENSHOTS") == "1" and name in README_PAGES:
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shrink_png(path, README_SCREENSHOTS / f"{name}.png")
    return path


def shrink_png(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target``, re-encoding with a 256-colour palette when it is too big."""
    from PIL import Image

    shutil.copyfile(source, target)
    if target.stat().st_size <= MAX_SCREENSHOT_BYTES:
        return
    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            target, optimize=True)


def login(page, base: str, username: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def spread(items: list, count: int) -> list:
    return items[::max(1, len(items) // count)][:count]


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
