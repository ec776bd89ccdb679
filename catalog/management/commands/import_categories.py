"""Import categories from CSV or JSON Lines (slug, name, description, parent_slug)."""

from django.core.management.base import BaseCommand, CommandError

from catalog.imports.service import categories_import_file


class Command(BaseCommand):
    help = "Create or update categories by slug; parents are created before their children."

    def add_arguments(self, parser):
        parser.add_argument("path", help="The .csv or .jsonl file.")
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, **options):
        try:
            with open(options["path"], "rb") as stream:
                report = categories_import_file(stream=stream, name=options["path"],
                                                dry_run=options["dry_run"])
        except OSError as exc:
            raise CommandError(f"Cannot read {options['path']}: {exc}") from exc
        self.stdout.write(f"Categories: {report.summary()}")
        for error in report.errors:
            self.stderr.write(str(error))
        if report.errors:
            raise CommandError(f"{report.failed_rows} rows had errors (listed above).")
