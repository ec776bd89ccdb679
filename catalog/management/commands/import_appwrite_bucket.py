"""Create or update a product for each image in the Appwrite bucket (safe to run again)."""

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.exceptions import StorageError
from catalog.importer import appwrite_bucket_import
from classifier.exceptions import ClassifierError
from classifier.services import classification_job_start


class Command(BaseCommand):
    help = ("Create or update one product per image file in the product image bucket; a second "
            "run changes nothing. Non-image files are skipped and counted.")

    def add_arguments(self, parser):
        parser.add_argument("--bucket", help="Bucket id (must be APPWRITE_BUCKET_ID; a check).")
        parser.add_argument("--classify", action="store_true",
                            help="Queue one classification job for created and updated products "
                                 "(with CLASSIFIER_AUTO_CLASSIFY on, each is queued as it "
                                 "changes anyway).")
        parser.add_argument("--dry-run", action="store_true", help="Count only; change nothing.")

    def handle(self, *args, bucket=None, classify=False, dry_run=False, **options):
        with tqdm(unit="file", disable=options["verbosity"] == 0, file=sys.stderr) as bar:
            try:
                report = appwrite_bucket_import(bucket_id=bucket, dry_run=dry_run, progress=bar)
            except StorageError as exc:
                raise CommandError(str(exc)) from exc
        prefix = "Dry run (nothing changed): " if dry_run else ""
        classified = _classify(report.product_ids) if classify and not dry_run else ""
        self.stdout.write(self.style.SUCCESS(prefix + report.summary() + classified))


def _classify(product_ids: list[int]) -> str:
    if not product_ids:
        return "; classification: nothing new to classify"
    if settings.CLASSIFIER["AUTO_CLASSIFY"]:
        return "; classification: queued for each product as it changed (auto-classify is on)"
    try:
        job = classification_job_start(products=product_ids, scope="import")
    except ClassifierError as exc:
        return f"; classification: not queued ({exc.message})"
    return f"; classification: job {job.pk} queued for {len(product_ids)} product(s)"
