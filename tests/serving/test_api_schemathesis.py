"""Property-based check of the whole API against its own OpenAPI document: never a 5xx.

Schemathesis generates requests (valid and invalid) for every operation; the app runs in-process
over ASGI with its real routers and an empty registry, so it serves degraded and must say so
with 4xx/503, never crash.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

pytestmark = pytest.mark.slow

TOKEN = "schemathesis-token"


def test_no_server_errors_on_any_operation(state):
    from fastapi.testclient import TestClient
    from hypothesis import given
    from pydantic import SecretStr

    from serving.app import create_app

    app = create_app(state.model_copy(update={"api_token": SecretStr(TOKEN)}))
    failures: list[str] = []
    statuses: list[int] = []
    with TestClient(app):  # runs the start-up (model loading: degraded here) once
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 8
        for operation in operations:

            @given(case=operation.as_strategy())
            @hypothesis_settings(max_examples=15, deadline=None, database=None,
                                 suppress_health_check=list(HealthCheck))
            def check(case):
                response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
                statuses.append(response.status_code)
                if response.status_code >= 500 and response.status_code != 503:
                    failures.append(f"{case.method} {case.formatted_path} -> "
                                    f"{response.status_code}: {response.text[:200]}")

            check()
    assert len(statuses) >= 3 * len(operations), "schemathesis generated too few requests"
    assert not failures, "\n".join(failures[:10])
