"""The hostile-tenant matrix: every route of the app x every identity x open and closed reads.

Each route has an entry saying who may use it (a POLICY) and how to call it on team-a's things.
The routes are read from the app itself (pages included), so a route added without an entry fails
test_every_route_has_an_entry. A call is *denied* when it answers 401 or 403 (and 404 for routes
that hide what exists: jobs by id, blobs by digest); anything else, 2xx or a 404/409 from the
handler, means the caller got past authorisation. No call may answer 5xx.

Lists that a namespace narrows (search, jobs, events, the pages) answer 200 to everyone who may
read; with closed reads what they hold is checked instead: team-b's token sees nothing of team-a.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute

from tests.factories import adapter_files
from tests.security.conftest import IDENTITIES, Tenants, make_client

VALID = ("read", "write_other", "write", "ns_admin", "admin")  # tokens that authenticate
READERS_OF_A = ("read", "write", "ns_admin", "admin")  # team-a tokens and the global admin


@dataclass(frozen=True)
class Policy:
    """Who gets past authorisation, with open and with closed reads."""

    open: tuple[str, ...]
    closed: tuple[str, ...]
    hides: bool = False  # a denial may be a 404 (the route does not tell what exists)
    narrowed: bool = False  # a list: everyone who may read gets 200, with their namespace's items only

    def allowed(self, who: str, open_reads: bool) -> bool:
        return who in (self.open if open_reads else self.closed)


PUBLIC = Policy(IDENTITIES, IDENTITIES)
READ_A = Policy(("anonymous", *VALID), READERS_OF_A)  # a read of a team-a name
READ_LIST = Policy(("anonymous", *VALID), VALID, narrowed=True)
READ_HIDDEN = Policy(("anonymous", *VALID), READERS_OF_A, hides=True)  # by id or digest
WORKERS = Policy(("anonymous", *VALID), ("ns_admin", "admin"))
WRITE_A = Policy(("write", "ns_admin", "admin"), ("write", "ns_admin", "admin"))
WRITE_A_JOB = Policy(("write", "ns_admin", "admin"), ("write", "ns_admin", "admin"), hides=True)
ADMIN = Policy(("ns_admin", "admin"), ("ns_admin", "admin"))
OPERATOR = Policy(("admin",), ("admin",))  # an admin token without a namespace

_n = itertools.count()
Call = Callable[[Tenants, str], dict[str, Any]]


def get(url: str, **kw: Any) -> Call:
    return lambda t, who: {"url": url.format(t=t), **kw}


def _victim_token(t: Tenants, who: str) -> dict[str, Any]:
    v = t.registry.tokens.create(f"victim-{next(_n)}", scope="read", namespace="team-a")
    return {"url": f"/api/v1/tokens/{v.info.id}"}


def _victim_token_by_name(t: Tenants, who: str) -> dict[str, Any]:
    v = t.registry.tokens.create(f"victim-{next(_n)}", scope="read", namespace="team-a")
    return {"url": "/api/v1/tokens", "params": {"name": v.info.name}}


def _push(t: Tenants, who: str) -> dict[str, Any]:
    return {"url": "/api/v1/adapters/team-a/bot/versions", "files": adapter_files(t.adapter),
            "data": {"base": "tiny-llama"}}


def _push_all(t: Tenants, who: str) -> dict[str, Any]:
    return {**_push(t, who), "url": "/api/v1/adapters/team-a/bot/push-all"}


A = "/api/v1/adapters/team-a/bot"
# (METHOD, route path) -> (policy, how to call it)
ROUTES: dict[tuple[str, str], tuple[Policy, Call]] = {
    ("GET", "/api/v1/healthz"): (PUBLIC, get("/api/v1/healthz")),
    # catalog reads
    ("GET", "/api/v1/adapters"): (READ_LIST, get("/api/v1/adapters")),
    ("GET", "/api/v1/adapters/{name:path}"): (READ_A, get(A)),
    ("GET", "/api/v1/adapters/{name:path}/versions/{ref}"): (READ_A, get(A + "/versions/1")),
    ("GET", "/api/v1/adapters/{name:path}/versions/{ref}/evals"): (READ_A, get(A + "/versions/1/evals")),
    ("GET", "/api/v1/adapters/{name:path}/versions/{ref}/merged"): (READ_A, get(A + "/versions/1/merged")),
    ("GET", "/api/v1/adapters/{name:path}/aliases"): (READ_A, get(A + "/aliases")),
    ("GET", "/api/v1/adapters/{name:path}/aliases/history"): (READ_A, get(A + "/aliases/history")),
    ("GET", "/api/v1/events"): (READ_LIST, get("/api/v1/events", params={"limit": 1000})),
    ("GET", "/api/v1/bases"): (READ_LIST, get("/api/v1/bases")),
    ("GET", "/api/v1/bases/{ref:path}"): (READ_LIST, get("/api/v1/bases/tiny-llama")),
    ("GET", "/api/v1/jobs"): (READ_LIST, get("/api/v1/jobs")),
    ("GET", "/api/v1/jobs/{job_id}"): (READ_HIDDEN, get("/api/v1/jobs/{t.team_a_job}")),
    ("GET", "/api/v1/blobs/{digest}"): (READ_HIDDEN, get("/api/v1/blobs/{t.team_a_blob}")),
    ("HEAD", "/api/v1/blobs/{digest}"): (READ_HIDDEN, get("/api/v1/blobs/{t.team_a_blob}")),
    ("GET", "/api/v1/workers"): (WORKERS, get("/api/v1/workers")),
    # pages
    ("GET", "/"): (READ_LIST, get("/")),
    ("GET", "/adapters/{name:path}"): (READ_A, get("/adapters/team-a/bot")),
    ("GET", "/bases"): (READ_LIST, get("/bases")),
    ("GET", "/jobs"): (READ_LIST, get("/jobs")),
    # writes on team-a's names
    ("POST", "/api/v1/adapters/{name:path}/versions"): (WRITE_A, _push),
    ("POST", "/api/v1/adapters/{name:path}/push-all"): (WRITE_A, _push_all),
    ("POST", "/api/v1/adapters/{name:path}/versions/{ref}/evals"):
        (WRITE_A, get(A + "/versions/1/evals", json={"metrics": {"acc": 0.6}})),
    ("POST", "/api/v1/adapters/{name:path}/versions/{ref}/lm-eval"):
        (WRITE_A, get(A + "/versions/1/lm-eval", json={"document": {"results": {"mmlu": {"acc,none": 0.6}}},
                                                       "file_name": "results.json"})),
    ("PUT", "/api/v1/adapters/{name:path}/aliases/{alias}"):
        (WRITE_A, get(A + "/aliases/staging", json={"version": 1})),
    ("DELETE", "/api/v1/adapters/{name:path}/aliases/{alias}"): (WRITE_A, get(A + "/aliases/staging")),
    ("POST", "/api/v1/adapters/{name:path}/versions/{ref}/deprecate"):
        (WRITE_A, get(A + "/versions/2/deprecate", json={})),
    ("POST", "/api/v1/adapters/{name:path}/versions/{ref}/verify"): (WRITE_A, get(A + "/versions/1/verify", json={})),
    ("POST", "/api/v1/adapters/{name:path}/versions/{ref}/merge"): (WRITE_A, get(A + "/versions/1/merge", json={})),
    ("POST", "/api/v1/adapters/{name:path}/versions/{ref}/publish"):
        (WRITE_A, get(A + "/versions/1/publish", json={"to": "dir://{t.publish_root}/bot"})),
    ("POST", "/api/v1/bases"):
        (WRITE_A, get("/api/v1/bases", json={"name": "team-a/llama", "path": "{t.base_path}"})),
    ("POST", "/api/v1/jobs/{job_id}/cancel"): (WRITE_A_JOB, get("/api/v1/jobs/{t.team_a_job}/cancel")),
    ("POST", "/api/v1/jobs/{job_id}/retry"): (WRITE_A_JOB, get("/api/v1/jobs/{t.team_a_job}/retry")),
    # administration
    ("GET", "/api/v1/tokens"): (ADMIN, get("/api/v1/tokens")),
    ("POST", "/api/v1/tokens"): (ADMIN, lambda t, who: {"url": "/api/v1/tokens", "json": {
        "name": f"made-by-{who}-{next(_n)}", "scope": "read", "namespace": "team-a"}}),
    ("DELETE", "/api/v1/tokens/{token_id}"): (ADMIN, _victim_token),
    ("DELETE", "/api/v1/tokens"): (ADMIN, _victim_token_by_name),
    ("GET", "/api/v1/audit"): (ADMIN, get("/api/v1/audit")),
    ("GET", "/api/v1/targets"): (ADMIN, get("/api/v1/targets")),
    ("POST", "/api/v1/targets"): (OPERATOR, lambda t, who: {"url": "/api/v1/targets", "json": {
        "url": f"dir://{t.publish_root}/extra-{next(_n)}", "namespace": "team-a"}}),
    ("DELETE", "/api/v1/targets/{id}"): (OPERATOR, get("/api/v1/targets/999999")),
}
# Routes that may still show another namespace's names with closed reads (none).
KNOWN_NARROWING_GAPS: set[tuple[str, str]] = set()


def routes(app) -> list[tuple[str, str]]:
    """(METHOD, path) of every route of the app, pages included, static files and the docs not."""
    out = []

    def walk(rs):
        for r in rs:
            if hasattr(r, "original_router"):  # FastAPI >= 0.116 wraps included routers
                walk(r.original_router.routes)
            elif isinstance(r, APIRoute):
                out.extend((m, r.path) for m in sorted(r.methods))

    walk(app.routes)
    return out


@pytest.fixture(scope="module")
def matrix_tenants(tenants, tiny_adapter, tiny_llama, tmp_path_factory):
    """The tenants, plus what the write calls need: team-a's publish target and base root."""
    from registry.targets import Targets

    root = tmp_path_factory.mktemp("published") / "team-a"
    Targets(tenants.registry.core).add(f"dir://{root}", namespace="team-a")
    Targets(tenants.registry.core).add(f"dir://{tiny_llama.parent}", namespace="team-a", kind="base")
    tenants.adapter, tenants.publish_root, tenants.base_path = tiny_adapter, root, tiny_llama
    return tenants


def test_every_route_has_an_entry(matrix_tenants):
    from registry.api import create_app

    found = set(routes(create_app(matrix_tenants.registry)))
    assert found - ROUTES.keys() == set(), "give these routes an entry in ROUTES (who may call them)"
    assert ROUTES.keys() - found == set(), "these entries name routes that do not exist"


def _format(kw: dict[str, Any], t: Tenants) -> dict[str, Any]:
    if "json" in kw:
        kw["json"] = {k: v.format(t=t) if isinstance(v, str) else v for k, v in kw["json"].items()}
    return kw


@pytest.mark.parametrize("open_reads", [True, False], ids=["open-reads", "closed-reads"])
def test_each_identity_gets_exactly_its_allowed_routes(matrix_tenants, open_reads):
    t = matrix_tenants
    wrong = []
    with make_client(t.registry, open_reads=open_reads) as c:
        for (method, path), (policy, call) in ROUTES.items():
            for who in IDENTITIES:
                kw = _format(call(t, who), t)
                r = c.request(method, kw.pop("url"), headers=t.headers(who), **kw)
                denied = r.status_code in ((401, 403, 404) if policy.hides else (401, 403))
                if r.status_code >= 500 or denied == policy.allowed(who, open_reads):
                    wrong.append(f"{method} {path} as {who}: {r.status_code} "
                                 f"(expected {'allowed' if policy.allowed(who, open_reads) else 'denied'}) "
                                 f"{r.text[:150]}")
                    continue
                if not open_reads and policy.narrowed and not denied and (method, path) not in KNOWN_NARROWING_GAPS:
                    other = "team-a/" if who == "write_other" else "team-b/" if who in ("read", "write", "ns_admin") \
                        else None
                    if other and other in _visible_text(r.text):
                        wrong.append(f"{method} {path} as {who}: shows {other} names with closed reads")
    assert not wrong, "\n".join(wrong)


def _visible_text(text: str) -> str:
    """The response without form attributes (a page echoes its filters and shows "team-a/" as an example)."""
    return re.sub(r'(value|placeholder)="[^"]*"', "", text)


def test_junk_and_revoked_tokens_are_401_on_every_route_but_healthz(matrix_tenants):
    t = matrix_tenants
    with make_client(t.registry, open_reads=True) as c:
        for (method, path), (_policy, call) in ROUTES.items():
            if path == "/api/v1/healthz":
                continue
            for who in ("junk", "revoked"):
                kw = _format(call(t, who), t)
                assert c.request(method, kw.pop("url"), headers=t.headers(who), **kw).status_code == 401, (method, path)


def test_the_bases_api_is_narrowed_with_closed_reads(matrix_tenants):
    t = matrix_tenants
    t.registry.add_base(t.base_path, name="team-a/only-a")
    with make_client(t.registry, open_reads=False) as c:
        names = [b["name"] for b in c.get("/api/v1/bases", headers=t.headers("write_other")).json()]
        shown = c.get("/api/v1/bases/team-a/only-a", headers=t.headers("write_other"))
        own = c.get("/api/v1/bases/team-a/only-a", headers=t.headers("write"))
    assert "team-a/only-a" not in names
    assert shown.status_code == 404
    assert own.status_code == 200


def test_base_locations_are_server_paths_only_the_unrestricted_admin_sees(matrix_tenants):
    t = matrix_tenants
    t.registry.add_base(t.base_path, name="team-a/only-a")
    with make_client(t.registry, open_reads=True) as c:
        for who in ("anonymous", "read", "ns_admin"):
            r = c.get("/api/v1/bases/team-a/only-a", headers=t.headers(who))
            assert r.status_code == 200 and str(t.base_path) not in r.text, who
        assert str(t.base_path) in c.get("/api/v1/bases/team-a/only-a", headers=t.headers("admin")).text
