"""Server-rendered pages (HTML over the in-process client; the browser test drives a real Chromium)."""

from __future__ import annotations

import re

from registry.api import svg


def rows(html: str) -> list[str]:
    return re.findall(r'<tr class="version-row[^"]*" data-name="([^"]+)"', html)


def test_catalog_lists_every_version_and_the_filters_of_ls_narrow_it(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert rows(r.text) == ["team-b/sql", "team-a/bot", "team-a/bot", "team-a/bot"]
    assert rows(client.get("/", params={"name": "team-b/"}).text) == ["team-b/sql"]
    assert rows(client.get("/", params={"metric": "acc>=0.55, f1>=0.3"}).text) == ["team-a/bot", "team-a/bot"]
    assert rows(client.get("/", params={"tag": "task=support"}).text) == ["team-a/bot"]
    assert rows(client.get("/", params={"min_rank": "8", "name": "team-a/bot"}).text) == ["team-a/bot", "team-a/bot"]


def test_catalog_shows_a_bad_filter_as_a_message_not_a_crash(client):
    r = client.get("/", params={"metric": "acc>>1"})
    assert r.status_code == 400 and 'id="error"' in r.text and "invalid metric filter" in r.text


def test_adapter_page_has_versions_typed_fields_evals_and_charts(client):
    r = client.get("/adapters/team-a/bot")
    assert r.status_code == 200
    html = r.text
    assert 'id="metrics-chart"' in html and html.count('class="series"') >= 2 + 1  # acc, f1 + loss
    assert 'data-series="acc"' in html and 'data-series="f1"' in html
    assert 'id="loss-chart"' in html  # v3 (the latest) came from a Trainer folder
    assert re.search(r"<th>Rank / alpha</th><td>r=8", html)
    assert "tiny-llama" in html and 'id="evals"' in html and "0.7" in html
    older = client.get("/adapters/team-a/bot", params={"version": 1}).text
    assert 'id="loss-chart"' not in older and "r=4" in older


def test_unknown_adapter_is_an_html_404_page(client):
    r = client.get("/adapters/nope")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"] and "no adapter named" in r.text


def test_bases_and_jobs_pages_render(client):
    assert "tiny-llama" in client.get("/bases").text
    r = client.get("/jobs")
    assert r.status_code == 200 and 'id="workers"' in r.text and 'id="jobs"' in r.text


def test_line_chart_scales_points_and_escapes_labels():
    out = svg.line_chart({"a<b": [(1, 0.5), (2, 0.7)], "c": [(1, float("nan")), (3, 0.1)]}, title="T & U",
                         chart_id="x", integer_x=True)
    assert out.startswith("<svg") and 'id="x"' in out and "T &amp; U" in out and 'data-series="a&lt;b"' in out
    assert out.count("<polyline") == 2 and "nan" not in out
    assert svg.line_chart({"a": []}, title="t") == "" and svg.line_chart({}, title="t") == ""
    flat = svg.line_chart({"a": [(1, 2.0)]}, title="t")
    assert "<polyline" in flat and "NaN" not in flat


def test_loss_points_read_pairs_and_dicts():
    assert svg.loss_points({"loss_curve": [[1, 2.0], {"step": 2, "loss": 1.5}, ["x"], [3, None]]}) == [(1, 2.0),
                                                                                                       (2, 1.5)]
    assert svg.loss_points(None) == []


def test_adapter_page_shows_promotion_policies_and_how_the_version_would_fare(tmp_path, tiny_llama, tiny_adapter):
    import shutil

    from fastapi.testclient import TestClient

    from registry.api.app import create_app
    from registry.app import Registry
    from registry.settings import Settings

    reg = Registry(Settings.from_env(env={}, home=tmp_path / "h", actor="t"))
    reg.add_base(tiny_llama, name="tl")
    reg.push(tiny_adapter, name="bot", base="tl")
    d = shutil.copytree(tiny_adapter, tmp_path / "v2")
    (d / "README.md").write_text("v2")
    reg.push(d, name="bot", base="tl")
    reg.add_eval("bot@1", {"mmlu": 0.7})
    reg.add_eval("bot@2", {"mmlu": 0.5})
    reg.release.protect_alias("bot", "production", require_metrics=["mmlu>=0.62"])
    reg.release.set_alias("bot", "production", 1)
    html = TestClient(create_app(reg)).get("/adapters/bot?version=2").text
    section = html.split('id="alias-policies"')[1].split("</table>")[0]
    assert "production" in section and "mmlu&gt;=0.62" in section
    assert "passes" in section and "refused: mmlu is 0.5" in section
    reg.close()
