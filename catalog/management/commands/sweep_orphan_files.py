"""List (or with --delete, remove) stored files that no product or model version refers to."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from catalog.orphans import DEFAULT_GRACE, orphan_files_sweep


class Command(BaseCommand):
    help = ("Find files under products/ and models/ in the image and model storages that no "
            "record refers to (left by a process killed mid-upload). Lists them; --delete "
            "removes them.")

    def add_arguments(self, parser):
        parser.add_argument("--delete", action="store_true",
                            help="Delete the orphans (without it, only list them).")
        parser.add_argument("--older-than", type=float, metavar="HOURS",
                            default=DEFAULT_GRACE.total_seconds() / 3600,
                            help="Leave files younger than this alone (default: %(default)s).")

    def handle(self, *args, delete=False, older_than=1.0, **options):
        report = orphan_files_sweep(dry_run=not delete, older_than=timedelta(hours=older_than))
        for stored in report.orphans:
            self.stdout.write(f"{stored.where}: {stored.name}")
        verb = "Deleted" if delete else "Found (dry run; --delete removes them)"
        self.stdout.write(self.style.SUCCESS(
            f"{verb} {report.deleted if delete else len(report.orphans)} orphan file(s)."))
        if report.failed:
            raise CommandError("Could not delete: " + "; ".join(report.failed))
