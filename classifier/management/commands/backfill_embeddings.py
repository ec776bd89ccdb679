"""``manage.py backfill_embeddings``: embed product images classified before embeddings existed."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from classifier import services
from classifier.exceptions import ClassifierError


class Command(BaseCommand):
    help = ("Store an image embedding, computed by the active model, for every product that has "
            "none from its backbone (classified before embeddings were stored, or under another "
            "backbone, or given a new image since). Categories and predictions are not touched. "
            "Dry run by default: says how many products would be embedded; --apply does it.")

    def add_arguments(self, parser):
        parser.add_argument("--apply", action="store_true",
                            help="Embed them (otherwise only count them).")
        parser.add_argument("--chunk-size", type=int, default=64,
                            help="Images per batched inference (default 64).")

    def handle(self, *args, **options):
        try:
            dry = services.products_embeddings_backfill(apply=False)
            self.stdout.write(f"{dry.missing} products have no embedding from {dry.backbone} "
                              f"(active model v{dry.model_number}).")
            if not options["apply"] or not dry.missing:
                if dry.missing:
                    self.stdout.write("Dry run: nothing written. Run again with --apply.")
                return
            with tqdm(total=dry.missing, unit="img", disable=options["verbosity"] < 1,
                      file=self.stderr) as bar:
                done = services.products_embeddings_backfill(
                    apply=True, chunk_size=options["chunk_size"], progress=bar.update)
            refreshed = services.similarity_index_refresh()
        except ClassifierError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Embedded {done.embedded} products, {done.failed} failed (see the "
                          f"log). Similarity index: {refreshed.status}, {refreshed.count} "
                          f"products, {refreshed.pairs} duplicate pairs.")
