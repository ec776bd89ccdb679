"""Train a classifier from the catalog (or an image folder/zip) here, with a progress bar."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from training.exceptions import TrainingError
from training.hparams import ARCHITECTURES, QUANTIZATIONS
from training.management.console import ProgressBar, metrics_table
from training.models import ActivationPolicy, TrainingSource, TrainingStatus
from training.services import training_run_create, training_run_execute

# CLI option -> HParams field; options left unset keep the HParams defaults.
HPARAM_OPTIONS = {
    "architecture": "architecture", "image_size": "image_size", "epochs": "epochs",
    "batch_size": "batch_size", "validation_split": "validation_split",
    "test_split": "test_split", "seed": "seed", "min_images": "min_images_per_class",
    "quantization": "quantization", "weights": "weights", "fine_tune_epochs": "fine_tune_epochs",
}


class Command(BaseCommand):
    help = ("Train an image classifier on person-labelled catalog products (or --from-dir) and "
            "save it as a new model version. Runs here, not on the queue.")

    def add_arguments(self, parser):
        parser.add_argument("--from-dir", metavar="PATH",
                            help="Image folder <folder>/<category>/<image> or a zip of it.")
        parser.add_argument("--architecture", choices=ARCHITECTURES)
        parser.add_argument("--image-size", type=int, metavar="PX", help="Square input side.")
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--validation-split", type=float)
        parser.add_argument("--test-split", type=float)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--min-images", type=int, help="Minimum images per category.")
        parser.add_argument("--quantization", choices=QUANTIZATIONS)
        parser.add_argument("--weights", help="imagenet, a no-top .h5 path, or 'none'.")
        parser.add_argument("--fine-tune-epochs", type=int)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--activate", dest="policy", action="store_const",
                           const=ActivationPolicy.ALWAYS, help="Activate the new version.")
        group.add_argument("--no-activate", dest="policy", action="store_const",
                           const=ActivationPolicy.NEVER, help="Never activate it.")
        parser.add_argument("--name", default="", help="A label for the new model version.")

    def handle(self, *args, **opts):
        options = _hparam_options(opts)
        source = TrainingSource.FOLDER if opts["from_dir"] else TrainingSource.CATALOG
        # Whoever runs the command may read the folder they name (like import --images-dir),
        # relative to where they run it.
        folder = Path(opts["from_dir"]).resolve() if opts["from_dir"] else None
        try:
            run = training_run_create(
                options=options, source=source, source_path=str(folder or ""),
                activation_policy=opts["policy"] or ActivationPolicy.IF_BETTER,
                source_roots=[folder or Path(".")])
        except TrainingError as exc:
            raise CommandError(str(exc)) from exc
        with ProgressBar(self.stderr) as bar:
            run = training_run_execute(run_id=run.pk, progress=bar.update, log=bar.write)
        if run.status != TrainingStatus.SUCCEEDED:
            raise CommandError(f"Training run #{run.pk} failed: {run.error}")
        self.stdout.write(metrics_table(run.model_version))
        state = "activated" if run.activated else "not activated"
        self.stdout.write(self.style.SUCCESS(
            f"Saved model version v{run.model_version.number} ({state}); run #{run.pk}."))


def _hparam_options(opts: dict) -> dict:
    options = {field: opts[cli] for cli, field in HPARAM_OPTIONS.items() if opts[cli] is not None}
    if "image_size" in options:
        options["image_size"] = [options["image_size"]] * 2
    if str(options.get("weights", "")).lower() == "none":
        options["weights"] = None
    if opts["name"]:
        options["name"] = opts["name"]
    return options
