"""Tests for classifier.inference against real tiny TFLite models built with TensorFlow."""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier.exceptions import ImageDecodeError, ModelContractError, ModelLoadError
from classifier.inference import LiteRTClassifier, Prediction, softmax, top_k
from classifier.preprocessing import InputContract, decode_images
from tests.support.tiny_model import (
    DEFAULT_LABELS,
    make_tiny_tflite,
    make_tiny_tflite_int8,
    make_tiny_tflite_with_embedding,
    solid_color_jpeg,
    tiny_contract,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PRIMARIES = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@pytest.fixture(scope="module")
def float_model() -> bytes:
    return make_tiny_tflite()


@pytest.fixture(scope="module")
def int8_model() -> bytes:
    return make_tiny_tflite_int8()


@pytest.fixture
def classifier(float_model) -> LiteRTClassifier:
    return LiteRTClassifier(float_model, labels=DEFAULT_LABELS, contract=tiny_contract())


def noise_jpegs(count: int) -> list[bytes]:
    rng = np.random.default_rng(1)
    images = []
    for _ in range(count):
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG")
        images.append(buffer.getvalue())
    return images


# --- predictions ------------------------------------------------------------------------------


@pytest.mark.parametrize("label", DEFAULT_LABELS)
def test_solid_primary_jpeg_is_classified_as_its_colour(classifier, label):
    [prediction] = classifier.predict_bytes([solid_color_jpeg(PRIMARIES[label])])

    assert isinstance(prediction, Prediction)
    assert prediction.label == label
    assert prediction.confidence > 0.5
    assert prediction.top_k[0] == (label, prediction.confidence)
    assert sorted(name for name, _ in prediction.top_k) == sorted(DEFAULT_LABELS)


@pytest.mark.parametrize("label", DEFAULT_LABELS)
def test_full_int8_model_classifies_solid_primaries(int8_model, label):
    classifier = LiteRTClassifier(
        int8_model, labels=DEFAULT_LABELS, contract=tiny_contract(dtype="int8")
    )

    [prediction] = classifier.predict_bytes([solid_color_jpeg(PRIMARIES[label])])

    assert prediction.label == label
    assert prediction.confidence > 0.5


def test_int8_probabilities_are_dequantised_close_to_float_model(float_model, int8_model):
    batch, _ = decode_images(noise_jpegs(4) + [solid_color_jpeg((255, 0, 0))], size=(32, 32))
    float_probs = LiteRTClassifier(
        float_model, labels=DEFAULT_LABELS, contract=tiny_contract()
    ).predict_proba(batch)

    int8_probs = LiteRTClassifier(
        int8_model, labels=DEFAULT_LABELS, contract=tiny_contract(dtype="int8")
    ).predict_proba(batch)

    # int8 logits have a step of ~0.04 over the calibrated -5..5 range.
    assert np.allclose(int8_probs, float_probs, atol=0.05)


def test_two_output_model_gives_embeddings_from_the_same_invoke(float_model):
    two = LiteRTClassifier(make_tiny_tflite_with_embedding(), labels=DEFAULT_LABELS,
                           contract=tiny_contract(), max_batch=4)
    one = LiteRTClassifier(float_model, labels=DEFAULT_LABELS, contract=tiny_contract())
    batch = np.zeros((6, 32, 32, 3), np.uint8)
    batch[:, :, :, 0] = np.arange(6)[:, None, None] * 40  # reds of rising intensity
    probs, embeddings = two.predict(batch)
    np.testing.assert_allclose(probs, one.predict_proba(batch), atol=1e-5)
    np.testing.assert_allclose(embeddings[:, 0], np.arange(6) * 40 / 255, atol=1e-5)
    assert embeddings.shape == (6, 3) and two.embedding_dim == 3
    assert two.invoke_count == 2  # 6 images, batches of 4: embeddings came with the logits
    assert one.predict(batch)[1] is None and one.embedding_dim == 0
    [prediction] = two.predict_bytes([solid_color_jpeg((255, 0, 0))])
    assert prediction.label == "red"
    np.testing.assert_allclose(prediction.embedding, [1.0, 0.0, 0.0], atol=0.02)


def test_probabilities_are_float32_rows_summing_to_one(classifier):
    batch, _ = decode_images(noise_jpegs(3), size=(32, 32))

    probs = classifier.predict_proba(batch)

    assert probs.shape == (3, 3) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)


# --- batching ---------------------------------------------------------------------------------


def test_batch_of_ten_runs_one_invoke_with_batch_dimension_ten(classifier):
    batch, _ = decode_images(noise_jpegs(10), size=(32, 32))

    classifier.predict_proba(batch)

    assert classifier.invoke_count == 1
    assert classifier._interpreter.get_input_details()[0]["shape"][0] == 10


def test_batch_larger_than_max_batch_is_split_into_sub_batches(float_model):
    classifier = LiteRTClassifier(
        float_model, labels=DEFAULT_LABELS, contract=tiny_contract(), max_batch=4
    )
    batch, _ = decode_images(noise_jpegs(10), size=(32, 32))

    probs = classifier.predict_proba(batch)

    assert probs.shape == (10, 3)
    assert classifier.invoke_count == 3  # 4 + 4 + 2


def test_batch_results_equal_one_by_one_results(classifier):
    batch, _ = decode_images(noise_jpegs(6) + [solid_color_jpeg((0, 0, 255))], size=(32, 32))

    together = classifier.predict_proba(batch)
    one_by_one = np.concatenate([classifier.predict_proba(batch[i : i + 1]) for i in range(7)])

    assert np.allclose(together, one_by_one, atol=1e-6)


def test_empty_batch_returns_no_rows_without_invoking(classifier):
    probs = classifier.predict_proba(np.zeros((0, 32, 32, 3), dtype=np.uint8))

    assert probs.shape == (0, 3)
    assert classifier.invoke_count == 0


def test_bad_image_in_predict_bytes_gives_its_error_and_the_rest_are_classified(classifier):
    items = [solid_color_jpeg((255, 0, 0)), b"not an image", solid_color_jpeg((0, 255, 0))]

    results = classifier.predict_bytes(items)

    assert [getattr(r, "label", None) for r in results] == ["red", None, "green"]
    assert isinstance(results[1], ImageDecodeError)
    assert classifier.invoke_count == 1


def test_batch_of_wrong_image_size_raises_value_error(classifier):
    with pytest.raises(ValueError, match="32, 32"):
        classifier.predict_proba(np.zeros((1, 16, 16, 3), dtype=np.uint8))


# --- loading and contract checks --------------------------------------------------------------


def test_contract_with_wrong_input_size_raises_model_contract_error(float_model):
    with pytest.raises(ModelContractError, match="64"):
        LiteRTClassifier(float_model, labels=DEFAULT_LABELS, contract=InputContract(64, 64))


def test_wrong_label_count_raises_model_contract_error(float_model):
    with pytest.raises(ModelContractError, match="4 labels"):
        LiteRTClassifier(float_model, labels=("a", "b", "c", "d"), contract=tiny_contract())


def test_contract_dtype_not_matching_input_tensor_raises_model_contract_error(int8_model):
    with pytest.raises(ModelContractError, match="int8"):
        LiteRTClassifier(int8_model, labels=DEFAULT_LABELS, contract=tiny_contract())


@pytest.mark.parametrize("content", [b"this is not a tflite flatbuffer" * 4, b""])
def test_garbage_model_bytes_raise_model_load_error(content):
    with pytest.raises(ModelLoadError) as caught:
        LiteRTClassifier(content, labels=DEFAULT_LABELS, contract=tiny_contract())

    assert "Re-export" in caught.value.message


# --- softmax and top_k ------------------------------------------------------------------------


def test_softmax_is_stable_for_huge_logits():
    probs = softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]]))

    assert np.all(np.isfinite(probs))
    assert np.allclose(probs[0], [1.0, 0.0, 0.0])
    expected = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    assert np.allclose(probs[1], expected)


def test_top_k_breaks_ties_by_label_index():
    probs = np.array([[0.1, 0.3, 0.3, 0.3], [0.25, 0.25, 0.25, 0.25]])

    first, second = top_k(probs, ["a", "b", "c", "d"], k=2)

    assert [name for name, _ in first.top_k] == ["b", "c"]
    assert [name for name, _ in second.top_k] == ["a", "b"]
    assert first.label == "b" and first.confidence == pytest.approx(0.3)


def test_top_k_larger_than_class_count_returns_every_class():
    [prediction] = top_k(np.array([[0.2, 0.8]]), ["cat", "dog"], k=5)

    assert prediction.top_k == [("dog", pytest.approx(0.8)), ("cat", pytest.approx(0.2))]


# --- no TensorFlow at runtime -----------------------------------------------------------------


def test_importing_inference_and_preprocessing_does_not_import_tensorflow():
    code = (
        "import sys, classifier.inference, classifier.preprocessing, classifier.exceptions\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
