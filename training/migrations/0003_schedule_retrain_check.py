"""Schedule the retrain check hourly on the training cluster.

A django-q2 Schedule row bound to the ``training`` cluster: only a training qcluster's scheduler
enqueues it, so automatic retrains happen where training can run, and a site without a training
worker never piles up runs nobody executes. The check (``training.tasks.training_run_start_if_due``)
is one count query when nothing is due. Created idempotently; kwargs may be edited in the admin
(e.g. ``{"options": {"image_size": [160, 160]}}``) to change the runs it starts.
"""

from django.db import migrations

SCHEDULE_NAME = "retrain when enough new labels"
CHECK_TASK = "training.tasks.training_run_start_if_due"
TRAINING_CLUSTER = "training"
HOURLY = "H"  # django_q.models.Schedule.HOURLY


def create_schedule(apps, schema_editor):
    schedule_model = apps.get_model("django_q", "Schedule")
    schedule_model.objects.get_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": CHECK_TASK, "schedule_type": HOURLY, "repeats": -1,
                  "cluster": TRAINING_CLUSTER},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0002_training_run_trigger"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
