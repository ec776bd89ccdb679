"""Schedule the resume of stalled classification jobs every few minutes.

A django-q2 Schedule row: every qcluster's scheduler (on either broker) enqueues the task, so a
chunk lost with a killed worker is re-run without anyone watching. Created idempotently.
"""

from django.db import migrations

SCHEDULE_NAME = "resume stalled classification jobs"
RESUME_TASK = "classifier.tasks.classification_jobs_resume_stalled"
# Often enough that a lost chunk costs minutes, rare enough to be free: the check is one query
# on unfinished jobs, and a job counts as stalled only after the broker's retry window anyway.
EVERY_MINUTES = 5
MINUTES = "I"  # django_q.models.Schedule.MINUTES


def create_schedule(apps, schema_editor):
    schedule_model = apps.get_model("django_q", "Schedule")
    schedule_model.objects.get_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": RESUME_TASK, "schedule_type": MINUTES, "minutes": EVERY_MINUTES,
                  "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("classifier", "0002_job_product_ids_and_progress"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
