"""Import products (and optionally categories) from CSV or JSON Lines, idempotent by SKU."""

from django.core.management.base import BaseCommand, CommandError

from catalog.imports.service import catalog_import_file, categories_import_file


class Command(BaseCommand):
    help = ("Create or update products from a CSV/JSON Lines file (sku, title, description, "
            "category_slug, image, published, price, labelled). Re-running it changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="The .csv or .jsonl file.")
        parser.add_argument("--format", choices=["csv", "jsonl"], default=None)
        parser.add_argument("--images-dir", action="append", default=[],
                            help="Another folder image paths may point into (repeatable).")
        parser.add_argument("--categories", default="",
                            help="A categories file (slug,name,description,parent_slug) to import "
                                 "first.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Check every row and report what would change; write nothing.")

    def handle(self, *args, **options):
        reports = []
        if options["categories"]:
            reports.append(("Categories", _run(categories_import_file, options["categories"],
                                               dry_run=options["dry_run"])))
        reports.append(("Products", _run(catalog_import_file, options["path"],
                                         fmt=options["format"], images_dirs=options["images_dir"],
                                         dry_run=options["dry_run"])))
        for label, report in reports:
            self.stdout.write(f"{label}: {report.summary()}")
            for error in report.errors:
                self.stderr.write(str(error))
        failed = sum(report.failed_rows for _, report in reports)
        if failed:
            done = "checked" if options["dry_run"] else "imported"
            raise CommandError(f"{failed} rows had errors (listed above); the other rows were "
                               f"{done}.")


def _run(service, path: str, **kwargs):
    try:
        with open(path, "rb") as stream:
            return service(stream=stream, name=path, **kwargs)
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc}") from exc
