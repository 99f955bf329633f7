"""The API's fast paths (registry/api/render.py, search's plain-row loading) answer exactly what the
generic ones do: the same bytes for the same requests, on a catalog of a few hundred versions with
tags, metrics, aliases, deprecations and successors, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from tests.factories import synthetic_catalog

QUERIES = [
    {"limit": 20},
    {"limit": 1000},
    {"limit": 7, "offset": 5, "count": True},
    {"max_rank": 16, "limit": 50},
    {"metrics": ["acc>=0.6"], "sort": "metric:acc", "limit": 20},
    {"metrics": ["acc>=0.5"], "sort": "metric:acc:asc", "limit": 20, "include_deprecated": True},
    {"include_deprecated": True, "limit": 200},  # deprecated versions name their successors
    {"sort": "name", "limit": 30},
    {"sort": "rank", "limit": 30},
    {"name": "search/", "limit": 40},
    {"tags": ["task=chat"], "limit": 40},
    {"tags": ["lang=日本語"]},
]


@pytest.fixture
def catalog(db_url, settings_for, tiny_llama, tiny_adapter):
    from registry.app import Registry

    ds = synthetic_catalog(db_url)
    reg = Registry(settings_for(db_url))
    # One real push among the synthetic rows: a real config, a real base, text that is not ASCII.
    reg.add_base(tiny_llama, name="tiny-llama")
    reg.push(tiny_adapter, name="team-a/bot", base="tiny-llama", tags=["lang=日本語"],
             description="naïve — «ünïcode» ✓")
    yield reg, ds
    reg.close()


def _generic(obj) -> bytes:
    """The serialisation the API had before its fast path: registry/types.py's to_dict walk."""
    from fastapi.responses import JSONResponse

    from registry.types import _plain

    return bytes(JSONResponse(_plain(obj)).body)


def _queries(ds):
    bases = sorted(set(ds.base_names)) + ["tiny-llama"]
    for q in QUERIES:
        yield q
        for b in bases:
            yield {**q, "base": b}


def test_render_gives_the_bytes_of_the_generic_to_dict_walk(catalog):
    from registry.api import render

    reg, ds = catalog
    seen = 0
    for q in _queries(ds):
        page = reg.search(**q)
        seen += len(page.items)
        assert bytes(render.json(page).body) == _generic(page), q
    assert seen > 1000
    for ref in ("team-a/bot@1", *(f"{n}@{v}" for n, v in zip(ds.adapter_names[:40], ds.adapter_versions))):
        shown = reg.show(ref)
        assert bytes(render.json(shown).body) == _generic(shown), ref
    for name in ds.adapter_names[:10]:
        a = reg.adapter(name)
        assert bytes(render.json(a).body) == _generic(a), name


def test_search_results_equal_the_versions_loaded_one_by_one(catalog):
    """Search hydrates plain rows; `get` hydrates the ORM's rows: the versions must be the same."""
    reg, ds = catalog
    for q in _queries(ds):
        page = reg.search(**q)
        assert [_generic(v) for v in page.items] == [_generic(reg.get(f"{v.name}@{v.version}"))
                                                         for v in page.items], q


def test_http_search_show_and_adapter_answer_the_generic_bytes(catalog):
    from fastapi.testclient import TestClient

    from registry.api import create_app

    reg, ds = catalog
    base = ds.base_names[0]
    with TestClient(create_app(reg)) as client:
        for params, q in [
            ({"base": base, "limit": 20}, {"base": base, "limit": 20}),
            ({"base": base, "max_rank": 16, "metric": "acc>=0.6", "sort": "metric:acc", "limit": 20},
             {"base": base, "max_rank": 16, "metrics": ["acc>=0.6"], "sort": "metric:acc", "limit": 20}),
            ({"deprecated": "true", "limit": 300, "count": "true"},
             {"include_deprecated": True, "limit": 300, "count": True}),
            ({"tag": "lang=日本語"}, {"tags": ["lang=日本語"]}),
        ]:
            r = client.get("/api/v1/adapters", params=params)
            assert r.status_code == 200
            assert r.content == _generic(reg.search(**q)), params
        for path, obj in [(f"/api/v1/adapters/{ds.adapter_names[0]}/versions/2", reg.show(f"{ds.adapter_names[0]}@2")),
                          ("/api/v1/adapters/team-a/bot/versions/1", reg.show("team-a/bot@1")),
                          (f"/api/v1/adapters/{ds.adapter_names[1]}", reg.adapter(ds.adapter_names[1]))]:
            r = client.get(path)
            assert r.status_code == 200
            assert r.content == _generic(obj), path


def _statements(reg, fn) -> list[str]:
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "(")):
            seen.append(statement)

    event.listen(reg.db.engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(reg.db.engine, "before_cursor_execute", record)
    return seen


def test_a_search_page_is_four_statements_and_reads_no_detail_columns(catalog):
    """Base revisions, the page's ids, its rows, then tags + aliases + metrics in one UNION ALL
    (a fifth for the successors named by deprecated versions on the page); a page never loads
    the columns only `show` prints (training, compat) nor a base's tensor layout."""
    reg, ds = catalog
    base = reg.search(metrics=["acc>=0.5"], limit=1).items[0].base.name  # a base whose pages are not empty
    stmts = _statements(reg, lambda: reg.search(base=base, limit=20))
    assert len(stmts) == 4, stmts
    stmts = _statements(reg, lambda: reg.search(base=base, limit=20, sort="metric:acc", metrics=["acc>=0.5"]))
    assert len(stmts) == 4, stmts
    page = None

    def deprecated_page():
        nonlocal page
        page = reg.search(include_deprecated=True, limit=1000)

    stmts = _statements(reg, deprecated_page)
    assert page is not None and any(v.successor for v in page.items)
    # No base given: the page's bases come after its rows (light too), then one for the successors.
    assert len(stmts) == 5, stmts
    for s in stmts + _statements(reg, lambda: reg.search(base=base, limit=20)):
        for col in ("training", "compat", "layout"):
            assert f".{col}," not in s and f".{col} " not in s and not s.rstrip().endswith(f".{col}"), (col, s)
