"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis), album routes included:
whatever a client sends, no answer is a 5xx, and every refusal is JSON saying why. The
suite runs a short, seeded round; FACESSL_FUZZ_EXAMPLES=1000 runs the long one."""

from __future__ import annotations

import os
import shutil

import pytest
import schemathesis
from conftest import shared_model
from hypothesis import HealthCheck, given, settings

from facessl.serve.app import create_app

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FACESSL_FUZZ_EXAMPLES", "40"))


@pytest.fixture(scope="module")
def api(grouped, tiny_lfw, tmp_path_factory):  # noqa: F811
    base = tmp_path_factory.mktemp("api-fuzz")
    model = shutil.copytree(shared_model(tiny_lfw, tmp_path_factory), base / "model")
    groups = shutil.copytree(grouped[0], base / "groups")
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(model, groups))


def test_no_request_gets_a_5xx_and_every_refusal_says_why(api):
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 9  # predict, people, health, the album and queue routes
    for operation in operations:
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def no_5xx(case):
            response = case.call()
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, (where, response.text[:300])
            if response.status_code >= 400:
                assert response.headers["content-type"][0].startswith("application/json"), where
                detail = response.json()["detail"]
                assert (isinstance(detail, str) and detail) or all(d.get("msg") for d in detail)

        no_5xx()
