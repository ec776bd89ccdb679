"""``manage.py find_duplicates``: likely duplicate products as CSV, from a fresh scan."""

import csv

from django.core.management.base import BaseCommand, CommandError

from classifier import services
from classifier.exceptions import ClassifierError

COLUMNS = ["sku_a", "sku_b", "score", "title_a", "title_b", "published_a", "published_b",
           "id_a", "id_b"]


class Command(BaseCommand):
    help = ("Print pairs of products whose images are near-identical (cosine similarity of the "
            "active model's embeddings at or above SIMILARITY_DUPLICATE_THRESHOLD) as CSV, "
            "highest first. Pairs a person already decided on in the admin are left out. "
            "Reads only: the duplicates page and the shared index are not changed.")

    def add_arguments(self, parser):
        parser.add_argument("--threshold", type=float,
                            help="Cosine similarity cut, 0 to 1 (default: the setting).")
        parser.add_argument("--include-decided", action="store_true",
                            help="Also pairs marked 'not a duplicate' or resolved.")

    def handle(self, *args, **options):
        threshold = options["threshold"]
        if threshold is not None and not 0 < threshold <= 1:
            raise CommandError("--threshold is a cosine similarity between 0 and 1, e.g. 0.92")
        try:
            pairs = services.duplicate_pairs_find(threshold=threshold,
                                                  include_decided=options["include_decided"])
        except ClassifierError as exc:
            raise CommandError(exc.message) from exc
        writer = csv.writer(self.stdout)
        writer.writerow(COLUMNS)
        for pair in pairs:
            writer.writerow([pair.a.sku, pair.b.sku, f"{pair.score:.4f}", pair.a.title,
                             pair.b.title, int(pair.a.is_published), int(pair.b.is_published),
                             pair.a.pk, pair.b.pk])
        self.stderr.write(f"{len(pairs)} likely duplicate pairs.")
