"""Property-based: schemathesis drives every documented operation from /openapi.json.

No 500s, no status codes the schema does not document, bodies that match their schemas. Both
valid (positive) and invalid (negative) inputs are generated.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import bearer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 15


def test_api_conforms_to_its_schema(app, tokens):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 12
    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                # As admin, so that writes get past auth into the handlers; auth has its own tests.
                case.call_and_validate(headers=bearer(tokens.admin), checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                pass  # nothing to make invalid (no parameters, no body)
            except Exception as e:  # collect every operation's failure, then report them together
                failures.append(f"{op.label} ({mode.value}): {str(e)[:1500]}")
    assert not failures, "\n\n".join(failures)


NAMESPACED_EXAMPLES = 3  # per operation and token: the whole API stays under ~30 s


def test_api_conforms_to_its_schema_for_namespaced_tokens(api_registry):
    """As a tenant would call it: a read and a write token limited to team-a, with closed reads, so
    every route's refusals (401/403/404 outside the namespace) are documented and never 500."""
    import dataclasses

    from registry.api import create_app

    app = create_app(api_registry, dataclasses.replace(api_registry.settings, open_reads=False))
    secrets = [api_registry.tokens.create("ns-reader", scope="read", namespace="team-a").token,
               api_registry.tokens.create("ns-writer", scope="write", namespace="team-a").token]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    ops = [r.ok() for r in schema.get_all_operations()]
    for op in ops:
        for i, secret in enumerate(secrets):
            try:
                _positive(op, secret)()
            except Unsatisfiable:
                pass
            except Exception as e:
                failures.append(f"{op.label} (token {i}): {str(e)[:1500]}")
    assert not failures, "\n\n".join(failures)


def _positive(op, secret: str):
    """A hypothesis test calling `op` with `secret` on a few valid inputs."""
    @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=NAMESPACED_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=bearer(secret), checks=CHECKS)

    return run


def test_openapi_is_3_and_every_error_response_is_the_error_shape(client):
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for code, resp in op["responses"].items():
                if code.isdigit() and int(code) >= 400:
                    schema = resp["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, \
                        (method, path, code)
