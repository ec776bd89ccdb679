"""Schedule the similarity index refresh every few minutes.

A django-q2 Schedule row, like 0003's: every qcluster's scheduler enqueues the task, which
rebuilds the index file and the duplicate candidates only when stored embeddings changed (one
aggregate query otherwise). Classification jobs also ask for a refresh when they finish; this
catches what they leave (a refresh held back by SIMILARITY_REBUILD_MIN_SECONDS, backfills,
deleted products). Created idempotently.
"""

from django.db import migrations

SCHEDULE_NAME = "refresh similarity index"
REFRESH_TASK = "classifier.tasks.similarity_index_refresh"
# Changes show in similar products and on the duplicates page within minutes; a check that
# finds nothing changed costs one query.
EVERY_MINUTES = 5
MINUTES = "I"  # django_q.models.Schedule.MINUTES


def create_schedule(apps, schema_editor):
    schedule_model = apps.get_model("django_q", "Schedule")
    schedule_model.objects.get_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": REFRESH_TASK, "schedule_type": MINUTES, "minutes": EVERY_MINUTES,
                  "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("classifier", "0005_product_embeddings_duplicates"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
