"""Appwrite Function: classify an image as soon as it is uploaded to a Storage bucket.

Deploy it with a model bundle exported by Catalog Classifier ("Download model" in the admin, or
``python manage.py export_model --active --output model.zip``) placed next to this file, either
as ``model.zip`` or unzipped into ``model/``. Subscribe the function to the event
``buckets.<BUCKET_ID>.files.*.create``. It needs only ai-edge-litert, Pillow, NumPy and the
Appwrite SDK: no TensorFlow and no project code.

Every preprocessing choice comes from the bundle's ``metadata.json``, so a retrained model with
another input size works without editing this file. The model takes RAW 0-255 float pixels and
rescales inside its graph: do NOT divide by 255 here. (The tutorial this started from divided by
255 *and* kept the model's Rescaling layer, so every image reached the network nearly black and
the predictions were meaningless.)
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from appwrite.client import Client
from appwrite.services.storage import Storage
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
# How many labels to return; the best one is first.
TOP_K = int(os.environ.get("TOP_K", "3"))
# Refuse images above this many pixels before decoding them (decompression bombs).
MAX_IMAGE_PIXELS = 50_000_000
_EXIF_ORIENTATION = 0x0112

_bundle = None  # loaded once per warm container


class Bundle:
    """A loaded model bundle: interpreter, labels in output order, and metadata."""

    def __init__(self, model: bytes, labels: list[str], metadata: dict):
        self.labels = labels
        self.metadata = metadata
        contract = metadata.get("input_contract", {})
        self.height, self.width = metadata["input_size"]
        if "source_size" not in metadata:
            raise ValueError("The model bundle has no source_size (exported before bundle "
                             "format 2): export it again from Catalog Classifier.")
        # JPEGs are decoded at the smallest DCT scale still >= this size: faster, and the same
        # pixels Catalog Classifier's own preprocessing produces.
        self.source_height, self.source_width = metadata["source_size"]
        self.value_range = metadata.get("value_range", [0.0, 255.0])
        self.mean, self.std = contract.get("mean"), contract.get("std")
        self.output = metadata.get("output", "logits")
        self.interpreter = Interpreter(model_content=model)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.scores = _logits_output(self.interpreter, len(labels))
        self.output_index = self.scores["index"]


def _logits_output(interpreter: Interpreter, num_labels: int) -> dict:
    """The class-score output. Catalog Classifier's models also output the image embedding
    (signature names ``logits`` and ``embedding``); older ones have the scores alone."""
    outputs = interpreter.get_output_details()
    signatures = interpreter.get_signature_list()
    if len(outputs) > 1 and len(signatures) == 1:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        named = runner.get_output_details()
        if "logits" in named:
            return next(d for d in outputs if d["index"] == named["logits"]["index"])
    return next(d for d in outputs if d["shape"][-1] == num_labels)


def load_bundle(location: str | Path | None = None) -> Bundle:
    """Read ``model.tflite``, ``labels.txt`` and ``metadata.json`` from a folder or a zip."""
    location = Path(location or os.environ.get("MODEL_BUNDLE", "") or _default_location())
    names = ("model.tflite", "labels.txt", "metadata.json")
    if location.is_dir():
        files = {name: (location / name).read_bytes() for name in names}
    else:
        with zipfile.ZipFile(location) as archive:
            files = {name: archive.read(name) for name in names}
    labels = [line for line in files["labels.txt"].decode("utf-8").splitlines() if line]
    return Bundle(files["model.tflite"], labels, json.loads(files["metadata.json"]))


def _default_location() -> Path:
    folder = HERE / "model"
    return folder if folder.is_dir() else HERE / "model.zip"


def preprocess(data: bytes, bundle: Bundle) -> np.ndarray:
    """Image bytes -> a (1, height, width, 3) tensor exactly as the model's metadata asks."""
    img = Image.open(io.BytesIO(data))
    if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:
        raise ValueError(f"Image is {img.size[0]}x{img.size[1]} pixels; too large to classify.")
    if img.format in ("JPEG", "MPO"):
        height, width = bundle.source_height, bundle.source_width
        if img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
            height, width = width, height  # the decoder works before EXIF rotation
        img.draft("RGB", (width, height))
    if getattr(img, "is_animated", False):
        img.seek(0)
    img = ImageOps.exif_transpose(img)
    if "transparency" in img.info or img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")  # transparent parts become a white backdrop
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    img = img.convert("RGB").resize((bundle.width, bundle.height), Image.Resampling.BILINEAR)
    pixels = np.asarray(img, dtype=np.float32)[None]  # raw 0-255: the graph rescales
    low, high = bundle.value_range
    if (low, high) != (0.0, 255.0):
        pixels = pixels * ((high - low) / 255.0) + low
    if bundle.mean is not None:
        pixels = pixels - np.asarray(bundle.mean, dtype=np.float32)
    if bundle.std is not None:
        pixels = pixels / np.asarray(bundle.std, dtype=np.float32)
    return _quantize(pixels, bundle.input)


def _quantize(pixels: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if detail["dtype"] == np.float32 or not scale:
        return pixels.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.rint(pixels / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def classify(data: bytes, bundle: Bundle, k: int = TOP_K) -> list[dict]:
    """The ``k`` most probable labels for one image, best first."""
    tensor = preprocess(data, bundle)
    interpreter = bundle.interpreter
    interpreter.resize_tensor_input(bundle.input["index"], list(tensor.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(bundle.input["index"], tensor)
    interpreter.invoke()
    output_detail = bundle.scores
    raw = interpreter.get_tensor(bundle.output_index)[0].astype(np.float64)
    scale, zero_point = output_detail["quantization"]
    if output_detail["dtype"] != np.float32 and scale:
        raw = (raw - zero_point) * scale
    probs = raw if bundle.output == "probabilities" else _softmax(raw)
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": bundle.labels[i], "confidence": float(probs[i])} for i in order]


def _softmax(logits: np.ndarray) -> np.ndarray:
    exps = np.exp(logits - logits.max())
    return exps / exps.sum()


def main(context):
    """Entry point: the event body is the uploaded File (``$id``, ``bucketId``, ``name``...)."""
    global _bundle
    body = context.req.body_json or {}
    file_id, bucket_id = body.get("$id") or body.get("fileId"), body.get("bucketId")
    if not file_id or not bucket_id:
        return context.res.json({"ok": False, "error": "Expected a storage file event "
                                 "(body with $id and bucketId)."}, 400)
    client = (Client().set_endpoint(os.environ["APPWRITE_FUNCTION_API_ENDPOINT"])
              .set_project(os.environ["APPWRITE_FUNCTION_PROJECT_ID"])
              .set_key(context.req.headers.get("x-appwrite-key") or os.environ["APPWRITE_API_KEY"]))
    try:
        data = Storage(client).get_file_download(bucket_id, file_id)
        _bundle = _bundle or load_bundle()
        top = classify(data, _bundle)
    except Exception as exc:  # noqa: BLE001 - report any failure for this file, never crash
        context.error(f"Could not classify {bucket_id}/{file_id}: {exc}")
        return context.res.json({"ok": False, "fileId": file_id, "error": str(exc)}, 500)
    context.log(f"{bucket_id}/{file_id}: {top[0]['label']} ({top[0]['confidence']:.1%})")
    return context.res.json({"ok": True, "fileId": file_id, "bucketId": bucket_id,
                             "label": top[0]["label"], "confidence": top[0]["confidence"],
                             "top_k": top, "model_version": _bundle.metadata.get("model_version")})
