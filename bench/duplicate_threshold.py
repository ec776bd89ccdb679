"""Duplicate threshold and storage codec, measured on real images and the real exported model.

    .venv/bin/python bench/duplicate_threshold.py [--images demo/catalog/images]

Trains the default model (EfficientNet-Lite0, frozen ImageNet backbone, ``quantization=auto``)
once on the demo catalog with ``training.pipeline.run_training`` (cached under
``var/bench/duplicates/``; delete it to retrain), then embeds every image through the serving
path (``classifier.preprocessing.decode_image`` + ``LiteRTClassifier.predict``, the exported
TFLite model's second output) and prints the cosine similarity of:

- the same photo after a change a shop's copy of it would go through (JPEG re-encode at
  quality 60, downscale to 60 %, crop 6 % off two edges, brightness +10 %, shifted 4 px and
  rotated 3 degrees: "the same product photographed twice"), against its original;
- the demo's variants (``<name>-1/2/3.jpg``: the same emoji re-staged on another background,
  scale and angle);
- different items of one category; items of different categories.

It also decodes each embedding from its stored form (``classifier.similarity.encoding``,
float16 and int8) and reports the largest score change and recall@10 against float32 exact
search on these real vectors, and the decision rule's outcome at a few thresholds.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "var" / "bench" / "duplicates"
K = 10
THRESHOLDS = (0.85, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98)
PERCENTILES = (0, 1, 5, 50, 95, 99, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", default=str(ROOT / "demo" / "catalog" / "images"))
    parser.add_argument("--quantization", choices=("trained", "float32", "dynamic"),
                        default="trained", help="the exported form training chose (auto), or "
                        "the kept Keras model exported again as float32 / dynamic-range")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    model, meta = _model(Path(args.images), args.quantization)
    paths = sorted(Path(args.images).glob("*/*.jpg"))
    originals = [p.read_bytes() for p in paths]
    base = _embed(model, originals)
    kinds = {name: _embed(model, [change(b) for b in originals]) for name, change in CHANGES}
    print(f"Model: {meta['backbone']} ({meta['dims']} dims), quantization {meta['quantization']}"
          f"; {len(paths)} images in {len({p.parent.name for p in paths})} categories.\n")
    rows = _pair_rows(paths, base, kinds)
    _print_distributions(rows)
    _print_thresholds(rows)
    _print_codecs(base)


# --- Changes a copy of a photo goes through ----------------------------------------------------

def _reencode(data: bytes, quality: int = 60) -> bytes:
    return _jpeg(Image.open(io.BytesIO(data)).convert("RGB"), quality)


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _downscale(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return _jpeg(image.resize((int(image.width * 0.6), int(image.height * 0.6)),
                              Image.Resampling.LANCZOS))


def _crop(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    dx, dy = int(image.width * 0.06), int(image.height * 0.06)
    return _jpeg(image.crop((dx, dy, image.width, image.height)))


def _brighter(data: bytes) -> bytes:
    return _jpeg(ImageEnhance.Brightness(Image.open(io.BytesIO(data)).convert("RGB"))
                 .enhance(1.10))


def _reshot(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    fill = image.getpixel((0, 0))
    moved = image.rotate(3.0, Image.Resampling.BICUBIC, translate=(4, 4), fillcolor=fill)
    return _jpeg(moved)


CHANGES = (("re-encoded q60", _reencode), ("downscaled 60%", _downscale),
           ("cropped 6%", _crop), ("brighter 10%", _brighter),
           ("shifted+rotated 3deg", _reshot))


# --- Model and embeddings ----------------------------------------------------------------------

def _model(images: Path, quantization: str):
    """The cached exported model (trained here once) as a LiteRTClassifier, and its metadata."""
    from classifier.contract import InputContract
    from classifier.inference import LiteRTClassifier

    model_path, meta_path = BENCH_DIR / "model.tflite", BENCH_DIR / "meta.json"
    if not model_path.exists():
        _train(images, model_path, meta_path)
    meta = json.loads(meta_path.read_text())
    if quantization != "trained":
        model_path = BENCH_DIR / f"model-{quantization}.tflite"
        if not model_path.exists():
            from training.export import reexport

            model_path.write_bytes(reexport(BENCH_DIR / "run" / "model.keras", quantization))
        meta["quantization"] = quantization
    model = LiteRTClassifier(model_path.read_bytes(), labels=meta["labels"],
                             contract=InputContract.from_dict(meta["contract"]), num_threads=2)
    return model, meta


def _train(images: Path, model_path: Path, meta_path: Path) -> None:
    from training.dataset import image_folder_items
    from training.hparams import HParams
    from training.pipeline import run_training

    print("Training the default model on the demo catalog (once)...", flush=True)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    outcome = run_training(image_folder_items(images), HParams(), workdir=BENCH_DIR / "run",
                           cache_root=BENCH_DIR / "cache", log=print)
    model_path.write_bytes(outcome.tflite_bytes)
    meta_path.write_text(json.dumps({
        "labels": outcome.labels, "contract": outcome.contract.to_dict(),
        "quantization": outcome.quantization, "backbone": outcome.embedding_backbone,
        "dims": outcome.embedding_dim}))


def _embed(model, blobs: list[bytes]) -> np.ndarray:
    from classifier.preprocessing import decode_image
    from classifier.similarity.encoding import l2_normalise

    out = []
    for start in range(0, len(blobs), 32):
        batch = np.stack([decode_image(b, size=model.contract.size)
                          for b in blobs[start:start + 32]])
        out.append(model.predict(batch)[1])
    return l2_normalise(np.concatenate(out))


# --- Pairs and tables --------------------------------------------------------------------------

def _pair_rows(paths: list[Path], base: np.ndarray, kinds: dict) -> dict[str, np.ndarray]:
    """Cosine scores per kind of pair."""
    rows = {f"same photo, {name}": np.sum(base * changed, axis=1)
            for name, changed in kinds.items()}
    category = np.array([p.parent.name for p in paths])
    item = np.array([f"{p.parent.name}/{p.stem.rsplit('-', 1)[0]}" for p in paths])
    sims = base @ base.T
    upper = np.triu_indices(len(paths), k=1)
    same_item = item[upper[0]] == item[upper[1]]
    same_category = category[upper[0]] == category[upper[1]]
    scores = sims[upper]
    rows["demo variants (re-staged)"] = scores[same_item]
    rows["other item, same category"] = scores[~same_item & same_category]
    rows["other category"] = scores[~same_category]
    return rows


def _print_distributions(rows: dict[str, np.ndarray]) -> None:
    print(f"{'pair kind':<32} {'pairs':>6} " + " ".join(f"{f'p{p}':>6}" for p in PERCENTILES))
    for name, scores in rows.items():
        print(f"{name:<32} {len(scores):>6} "
              + " ".join(f"{np.percentile(scores, p):>6.3f}" for p in PERCENTILES))
    print()


def _print_thresholds(rows: dict[str, np.ndarray]) -> None:
    same = np.concatenate([v for k, v in rows.items() if k.startswith("same photo")])
    print("Share of pairs at or above each threshold (a duplicate is 'same photo'):")
    print(f"{'threshold':>9} {'same photo':>10} {'variants':>9} {'same cat.':>9} "
          f"{'other cat.':>10}")
    for t in THRESHOLDS:
        print(f"{t:>9.2f} {np.mean(same >= t):>10.3f} "
              f"{np.mean(rows['demo variants (re-staged)'] >= t):>9.3f} "
              f"{np.mean(rows['other item, same category'] >= t):>9.3f} "
              f"{np.mean(rows['other category'] >= t):>10.4f}")
    print()


def _print_codecs(base: np.ndarray) -> None:
    from classifier.similarity.encoding import (
        CODEC_FLOAT16,
        CODEC_INT8,
        embedding_decode,
        embedding_encode,
    )

    truth = np.argsort(-(base @ base.T), axis=1)[:, 1:K + 1]
    print(f"Storage codec on these {len(base)} real embeddings ({base.shape[1]} dims):")
    print(f"{'codec':<6} {'bytes':>6} {'max |score change|':>18} {'recall@10':>9}")
    for codec in (CODEC_FLOAT16, CODEC_INT8):
        stored = [embedding_encode(v, codec=codec) for v in base]
        decoded = np.stack([embedding_decode(b) for b in stored])
        change = np.max(np.abs(decoded @ decoded.T - base @ base.T))
        found = np.argsort(-(base @ decoded.T), axis=1)[:, 1:K + 1]
        recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)])
        print(f"{codec:<6} {len(stored[0]):>6} {change:>18.5f} {recall:>9.3f}")


if __name__ == "__main__":
    main()
