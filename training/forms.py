"""The admin's retrain form: the main training options, turned into ``training_run_start`` args."""

from django import forms
from django.utils.html import escape

from training.hparams import HParams
from training.models import ActivationPolicy, TrainingSource

_DEFAULTS = HParams()
ARCHITECTURE_CHOICES = [
    ("efficientnet_lite0", "EfficientNet-Lite0, pretrained (recommended; weights installed with "
                           "the project, works offline)"),
    ("mobilenet_v3_small", "MobileNetV3-Small (its ImageNet weights are downloaded: needs "
                           "internet or Keras' download cache)"),
    ("cnn", "Tutorial CNN (no pretrained weights: a baseline)"),
]
WEIGHT_CHOICES = [("imagenet", "ImageNet (pretrained)"),
                  ("none", "Random initialisation (trains the whole network)")]
QUANTIZATION_CHOICES = [
    ("auto", "Measure float32, dynamic and int8; keep the fastest within 1 point of accuracy"),
    ("float32", "float32"), ("float16", "float16"), ("dynamic", "dynamic range (int8 weights)"),
    ("int8", "int8"),
]


class RetrainForm(forms.Form):
    source = forms.ChoiceField(choices=TrainingSource.choices, initial=TrainingSource.CATALOG)
    source_path = forms.CharField(
        required=False, max_length=500,
        # Form help texts are rendered as HTML: the angle brackets must be escaped to show.
        help_text=escape("For an image folder: a path on the training worker, laid out as "
                         "<folder>/<category>/<image>, or a .zip of it."))
    architecture = forms.ChoiceField(choices=ARCHITECTURE_CHOICES,
                                     initial=_DEFAULTS.architecture)
    # The initial choice is what training would use by default, so the form shows it.
    weights = forms.ChoiceField(choices=WEIGHT_CHOICES,
                                initial="none" if _DEFAULTS.weights is None else "imagenet",
                                help_text="Only used by transfer-learning architectures.")
    epochs = forms.IntegerField(
        min_value=1, max_value=500, initial=_DEFAULTS.epochs,
        help_text="For training a whole network (the tutorial CNN, random initialisation). A "
                  "pretrained backbone's head picks its epochs by cross-validation.")
    fine_tune_epochs = forms.IntegerField(
        min_value=0, max_value=100, initial=_DEFAULTS.fine_tune_epochs, required=False,
        help_text="Optional: also fine-tune the backbone's top layers this many epochs (slow); "
                  "kept only if it beats the frozen backbone on held-out products.")
    image_size = forms.IntegerField(min_value=32, max_value=512,
                                    initial=_DEFAULTS.image_size[0],
                                    help_text="Square input side in pixels (EfficientNet-Lite0 "
                                              "was pretrained at 224).")
    quantization = forms.ChoiceField(choices=QUANTIZATION_CHOICES, required=False,
                                     initial=_DEFAULTS.quantization)
    activation_policy = forms.ChoiceField(choices=ActivationPolicy.choices,
                                          initial=ActivationPolicy.IF_BETTER)

    def clean(self):
        data = super().clean()
        if data.get("source") == TrainingSource.FOLDER and not data.get("source_path"):
            self.add_error("source_path", "Give the folder or zip to train from.")
        return data

    def start_kwargs(self) -> dict:
        """Keyword arguments for ``training.services.training_run_start``."""
        data = self.cleaned_data
        options = {"architecture": data["architecture"], "epochs": data["epochs"],
                   "fine_tune_epochs": data.get("fine_tune_epochs") or 0,
                   "image_size": [data["image_size"]] * 2,
                   "quantization": data.get("quantization") or _DEFAULTS.quantization,
                   "weights": None if data["weights"] == "none" else data["weights"]}
        return {"options": options, "source": data["source"],
                "source_path": data["source_path"] if data["source"] == TrainingSource.FOLDER
                else "", "activation_policy": data["activation_policy"]}
