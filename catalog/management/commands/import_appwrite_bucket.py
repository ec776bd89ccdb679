"""Create or update a product for each image in the Appwrite bucket (safe to run again)."""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.exceptions import StorageError
from catalog.importer import appwrite_bucket_import


class Command(BaseCommand):
    help = ("Create or update one product per image file in the product image bucket; a second "
            "run changes nothing. Non-image files are skipped and counted.")

    def add_arguments(self, parser):
        parser.add_argument("--bucket", help="Bucket id (must be APPWRITE_BUCKET_ID; a check).")
        parser.add_argument("--classify", action="store_true",
                            help="Queue classification of created and updated products.")
        parser.add_argument("--dry-run", action="store_true", help="Count only; change nothing.")

    def handle(self, *args, bucket=None, classify=False, dry_run=False, **options):
        with tqdm(unit="file", disable=options["verbosity"] == 0, file=sys.stderr) as bar:
            try:
                report = appwrite_bucket_import(bucket_id=bucket, dry_run=dry_run,
                                                classify=classify, progress=bar)
            except StorageError as exc:
                raise CommandError(str(exc)) from exc
        prefix = "Dry run (nothing changed): " if dry_run else ""
        self.stdout.write(self.style.SUCCESS(prefix + report.summary()))
