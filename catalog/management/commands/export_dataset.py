"""Write the person-labelled product images as an image-folder dataset zip."""

from django.core.management.base import BaseCommand, CommandError

from catalog.exports.dataset import DatasetExport, dataset_export_write, product_list_for_dataset


class Command(BaseCommand):
    help = ("Export person-labelled product images as <category-slug>/<sku>.<ext> in a zip "
            "(Keras, Teachable Machine, Model Maker and train_classifier read it).")

    def add_arguments(self, parser):
        parser.add_argument("--output", required=True, help="Path of the .zip to write.")

    def handle(self, *args, **options):
        export = DatasetExport(queryset=product_list_for_dataset(),
                               filters={"output": options["output"]})
        try:
            dataset_export_write(export, options["output"])
        except OSError as exc:
            raise CommandError(f"Cannot write {options['output']}: {exc}") from exc
        self.stdout.write(f"Wrote {export.count:,} images in {len(export.written)} categories "
                          f"to {options['output']}.")
        for sku, reason in export.skipped:
            self.stderr.write(f"Skipped {sku}: {reason}")
