"""The admin's retrain form: the main training options, turned into ``training_run_start`` args."""

from django import forms
from django.utils.html import escape

from training.hparams import ARCHITECTURES, HParams
from training.models import ActivationPolicy, TrainingSource

_DEFAULTS = HParams()
WEIGHT_CHOICES = [("imagenet", "ImageNet (needs the download cache or internet)"),
                  ("none", "Random initialisation")]


class RetrainForm(forms.Form):
    source = forms.ChoiceField(choices=TrainingSource.choices, initial=TrainingSource.CATALOG)
    source_path = forms.CharField(
        required=False, max_length=500,
        # Form help texts are rendered as HTML: the angle brackets must be escaped to show.
        help_text=escape("For an image folder: a path on the training worker, laid out as "
                         "<folder>/<category>/<image>, or a .zip of it."))
    architecture = forms.ChoiceField(choices=[(a, a) for a in ARCHITECTURES],
                                     initial=_DEFAULTS.architecture)
    # The initial choice is what training would use by default, so the form shows it.
    weights = forms.ChoiceField(choices=WEIGHT_CHOICES,
                                initial="none" if _DEFAULTS.weights is None else "imagenet",
                                help_text="Only used by transfer-learning architectures.")
    epochs = forms.IntegerField(min_value=1, max_value=500, initial=_DEFAULTS.epochs)
    image_size = forms.IntegerField(min_value=32, max_value=512,
                                    initial=_DEFAULTS.image_size[0],
                                    help_text="Square input side in pixels.")
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
                   "image_size": [data["image_size"]] * 2,
                   "weights": None if data["weights"] == "none" else data["weights"]}
        return {"options": options, "source": data["source"],
                "source_path": data["source_path"] if data["source"] == TrainingSource.FOLDER
                else "", "activation_policy": data["activation_policy"]}
