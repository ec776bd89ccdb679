"""Write the product table as CSV or JSON Lines to a file or stdout."""

from types import SimpleNamespace

from django.core.management.base import BaseCommand, CommandError

from catalog.exports.table import (
    FORMATS,
    TableExport,
    catalog_export_write,
    product_list_for_export,
)


class Command(BaseCommand):
    help = "Export products (SKU, categories, prediction, status, image URL) as CSV or JSON Lines."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=FORMATS, default="csv")
        parser.add_argument("--bom", action="store_true",
                            help="Start with a UTF-8 byte order mark so Excel reads accents.")
        parser.add_argument("--output", default="-", help="File path, or - for stdout.")
        parser.add_argument("--published-only", action="store_true")
        parser.add_argument("--category", default="", help="Only products of this category slug.")
        parser.add_argument("--base-url", default="",
                            help="Prefix for site-relative image URLs (e.g. https://shop.example).")

    def handle(self, *args, **options):
        export = TableExport(
            queryset=product_list_for_export(published_only=options["published_only"],
                                             category_slug=options["category"]),
            fmt=options["format"], bom=options["bom"], base_url=options["base_url"],
            filters={k: options[k] for k in ("format", "published_only", "category") if options[k]},
        )
        output = options["output"]
        if output == "-":  # through self.stdout (call_command can capture it), newlines as given
            output = SimpleNamespace(write=lambda text: self.stdout.write(text, ending=""))
        try:
            count = catalog_export_write(export, output)
        except OSError as exc:
            raise CommandError(f"Cannot write {options['output']}: {exc}") from exc
        self.stderr.write(f"Exported {count:,} products as {options['format']}.")
