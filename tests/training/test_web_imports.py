"""The web process's training pieces (admin, services, tasks, charts) never import TensorFlow."""

import subprocess
import sys

from tests.support.django_fixtures import REPO_ROOT

CHECK = """
import sys, django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
import classifier.admin, training.admin, training.admin_model_version, training.services
import training.tasks, training.report, training.forms, training.selectors
from django.contrib import admin
admin.autodiscover()
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print(",".join(heavy) or "clean")
"""


def test_admin_services_tasks_and_charts_import_no_tensorflow():
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO_ROOT, capture_output=True,
                            text=True, env={"DJANGO_DEBUG": "1", "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "clean", result.stderr
