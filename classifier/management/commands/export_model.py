"""Write a model version's bundle (model.tflite, labels.txt, metadata.json) as a zip."""

from django.core.management.base import BaseCommand, CommandError

from classifier.bundle import BundleError
from classifier.exports import model_version_export_to
from classifier.models import ModelVersion


class Command(BaseCommand):
    help = ("Export a model version as a zip that any LiteRT/TFLite runtime (and the Appwrite "
            "Function in examples/) reads.")

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("number", nargs="?", type=int, help="Model version number.")
        which.add_argument("--active", action="store_true", help="The active model version.")
        parser.add_argument("--output", required=True, help="Path of the .zip to write.")

    def handle(self, *args, **options):
        lookup = {"is_active": True} if options["active"] else {"number": options["number"]}
        model_version = ModelVersion.objects.filter(**lookup).first()
        if model_version is None:
            raise CommandError("No such model version: see the numbers in the admin, or use "
                               "--active once a version is active.")
        try:
            path = model_version_export_to(model_version=model_version, output=options["output"])
        except (BundleError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Wrote model v{model_version.number} bundle to {path}.")
