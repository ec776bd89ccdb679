"""The OpenAPI schema validates, the docs page works offline, and fuzzing finds no 500s."""

import pytest
from django.core import signals
from django.core.management import call_command
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token

from config.wsgi import application

# Examples per operation and role: enough to hit empty, huge, odd-unicode and wrong-type values
# on every parameter; small enough that the whole run stays well under a minute.
FUZZ_EXAMPLES = 20


@pytest.mark.django_db
def test_schema_generates_and_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "/api/v1/products/{id}/classify/" in text and "/api/v1/classify/" in text


@pytest.mark.django_db
def test_docs_page_loads_swagger_ui_from_this_site(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn.jsdelivr" not in page


def _fuzz_operation(operation, headers: dict) -> None:
    from schemathesis.checks import not_a_server_error

    @given(case=operation.as_strategy())
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    run()


@pytest.fixture
def _keep_test_connection():
    """Calling the WSGI app directly would close the test transaction's connection after each
    request; Django's own test client disconnects the same handlers."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
@pytest.mark.usefixtures("_keep_test_connection")
def test_fuzzing_every_operation_as_anonymous_and_staff_finds_no_server_errors(
    clients, catalog, active_model, django_user_model,
):
    import schemathesis

    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    staff = django_user_model.objects.get(username="editor")
    roles = {"anonymous": {}, "staff": {"Authorization": f"Token {Token.objects.get(user=staff)}"}}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    for operation in operations:
        for headers in roles.values():
            _fuzz_operation(operation, headers)
