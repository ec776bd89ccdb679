"""``manage.py classify_catalog``: classify products from scripts and cron."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.models import Product
from classifier import selectors, services
from classifier.exceptions import ClassifierError


class Command(BaseCommand):
    help = ("Classify products with the active model: enqueue a background job (default), or "
            "run it in this process with --sync.")

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--unclassified", action="store_true",
                           help="Products with an image the classifier has not looked at yet.")
        which.add_argument("--all", action="store_true", help="Every product with an image.")
        which.add_argument("--ids", help="Comma-separated product ids, e.g. 1,2,3.")
        parser.add_argument("--sync", action="store_true",
                            help="Run here with a progress bar instead of in the workers.")

    def handle(self, *args, **options):
        products, scope = self._products(options)
        if not products.exists():
            # Nothing to do is not a job: an empty one would only clutter the job list.
            self.stdout.write("Nothing to classify: no product with an image matches.")
            return
        try:
            if not options["sync"]:
                job = services.classification_job_start(products=products, scope=scope)
                self.stdout.write(f"Enqueued classification job {job.pk} ({job.total} products)")
                return
            with tqdm(total=products.count(), unit="img", disable=options["verbosity"] < 1,
                      file=self.stderr) as bar:
                job = services.classification_job_run_sync(products=products, scope=scope,
                                                           progress=bar.update)
        except ClassifierError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Job {job.pk} {job.status}: {job.done_count} classified, "
                          f"{job.failed_count} failed")

    def _products(self, options):
        if options["unclassified"]:
            return selectors.products_unclassified(), "command: unclassified"
        if options["all"]:
            return Product.objects.exclude(image=""), "command: all"
        try:
            ids = [int(part) for part in options["ids"].split(",") if part.strip()]
        except ValueError as exc:
            raise CommandError("--ids takes comma-separated numbers, e.g. --ids 1,2,3") from exc
        return Product.objects.filter(pk__in=ids), f"command: ids {options['ids']}"[:200]
