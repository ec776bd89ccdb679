"""HParams validation and NumPy metrics (the report and its charts: test_report.py)."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluate import evaluate_probs
from training.exceptions import InvalidHParamsError, TrainingError
from training.hparams import HParams


@pytest.mark.parametrize("kwargs, message", [
    ({"architecture": "resnet"}, "Unknown architecture"),
    ({"quantization": "int4"}, "Unknown quantization"),
    ({"image_size": (16, 16)}, "image_size"),
    ({"epochs": 0}, "epochs must be"),
    ({"learning_rate": 2.0}, "learning_rate"),
    ({"validation_split": 0.6, "test_split": 0.4}, "lower them"),
    ({"decode_workers": 0}, "decode_workers"),
])
def test_invalid_hparams_raise_a_training_error_saying_what_to_change(kwargs, message):
    with pytest.raises(InvalidHParamsError, match=message) as info:
        HParams(**kwargs)
    assert isinstance(info.value, TrainingError)


def test_hparams_round_trip_through_json_dict():
    hp = HParams(architecture="cnn", image_size=[64, 48], weights=None, quantization="int8")
    again = HParams.from_dict(hp.to_dict())
    assert again == hp and again.image_size == (64, 48)
    with pytest.raises(InvalidHParamsError, match="Unknown hyperparameters"):
        HParams.from_dict({"epoch": 3})


def test_evaluate_probs_computes_per_class_scores_and_confusion():
    labels = ["a", "b", "c"]
    y_true = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[.8, .1, .1], [.2, .5, .3], [.1, .8, .1],
                      [.1, .7, .2], [.3, .3, .4], [.6, .3, .1]])
    m = evaluate_probs(y_true, probs, labels)
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m.per_class["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0,
                                "f1": pytest.approx(0.8), "support": 2}
    assert m.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m.top3_accuracy == 1.0
    assert m.to_dict()["confusion"] == m.confusion and m.to_dict()["count"] == 6

