"""Pushing what peft's `save_pretrained` writes for a model with several adapters: "default" at the
root, every other adapter in a subfolder named after it."""

from __future__ import annotations

import json
import shutil

import pytest

from registry.errors import AdapterValidationFailed, InvalidAdapter, InvalidInput, NotFound
from tests.factories import cli_env, run_cli


def test_the_real_peft_layout_is_what_these_tests_assume(two_named, default_and_named):
    assert not (two_named / "adapter_config.json").exists()
    assert {p.parent.name for p in two_named.glob("*/adapter_config.json")} == {"sql", "chat"}
    assert (default_and_named / "adapter_config.json").is_file()
    assert (default_and_named / "sql" / "adapter_config.json").is_file()


def test_two_named_adapters_push_one_version_each(registry, tiny_llama, two_named):
    registry.add_base(tiny_llama, name="tiny")
    res = registry.push_all(two_named, name="team-a/bot", base="tiny")
    assert [(i.adapter, i.folder, i.version.ref) for i in res.items] == [
        ("chat", "chat", "team-a/bot-chat@1"), ("sql", "sql", "team-a/bot-sql@1")]
    assert {i.adapter: i.version.rank for i in res.items} == {"sql": 4, "chat": 8}
    assert all(i.version.base.name == "tiny" and i.version.created for i in res.items)
    with pytest.raises(NotFound):
        registry.show("team-a/bot")  # there is no "default" adapter, so no version under the plain name
    again = registry.push_all(two_named, name="team-a/bot", base="tiny")
    assert [i.version.created for i in again.items] == [False, False]


def test_a_default_adapter_and_a_named_one_both_become_versions(registry, default_and_named):
    res = registry.push_all(default_and_named, name="team-a/bot")
    assert [(i.adapter, i.folder, i.version.ref) for i in res.items] == [
        ("default", ".", "team-a/bot@1"), ("sql", "sql", "team-a/bot-sql@1")]
    files = {f.path for f in registry.show("team-a/bot@1").files}
    assert "adapter_config.json" in files and not any(p.startswith("sql/") for p in files)


def test_a_plain_push_of_several_adapters_names_them_instead_of_dropping_any(registry, two_named, default_and_named):
    with pytest.raises(InvalidAdapter, match=r"holds 2 adapters \(chat, sql\)") as e:
        registry.push(two_named, name="bot")
    assert "--adapter" in e.value.hint
    with pytest.raises(InvalidAdapter, match=r"holds 2 adapters \(default, sql\)"):
        registry.push(default_and_named, name="bot")  # used to push the root and drop sql/ silently


def test_adapter_picks_one_and_names_it_as_given(registry, two_named, default_and_named):
    v = registry.push(two_named, name="team-a/sql-bot", adapter="sql")
    assert v.ref == "team-a/sql-bot@1" and v.rank == 4
    d = registry.push(default_and_named, name="team-a/root-bot", adapter="default")
    assert d.ref == "team-a/root-bot@1" and {f.path for f in registry.show(d.ref).files} >= {"adapter_config.json"}
    with pytest.raises(InvalidAdapter, match="has no adapter 'docs'") as e:
        registry.push(two_named, name="bot", adapter="docs")
    assert "chat, sql" in e.value.hint


def test_names_map_adapters_onto_registry_names(registry, two_named):
    res = registry.push_all(two_named, name="team-a/bot", names={"sql": "team-b/sql"})
    assert [i.version.ref for i in res.items] == ["team-a/bot-chat@1", "team-b/sql@1"]
    with pytest.raises(InvalidInput, match="docs"):
        registry.push_all(two_named, name="team-a/bot", names={"docs": "x"})
    with pytest.raises(InvalidInput, match="two adapters would be pushed as team-a/x"):
        registry.push_all(two_named, name="team-a/bot", names={"sql": "team-a/x", "chat": "team-a/x"})


def test_one_refused_adapter_stores_none_of_them(registry, default_and_named, tmp_path):
    broken = tmp_path / "multi"
    shutil.copytree(default_and_named, broken)
    w = broken / "sql" / "adapter_model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(AdapterValidationFailed):
        registry.push_all(broken, name="bot")
    assert registry.search(name="bot").items == () and registry.search(name="bot-sql").items == ()


def test_the_cli_pushes_every_adapter_with_a_line_each(registry, two_named, default_and_named):
    env = cli_env(registry.settings)
    r = run_cli("push", str(two_named), "--name", "team-a/bot", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("chat (chat): created team-a/bot-chat@1")
    assert lines[1].startswith("sql (sql): created team-a/bot-sql@1")
    r = run_cli("push", str(default_and_named), "--name", "team-a/bot", "--map", "sql=team-a/sql", "--json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [(i["adapter"], i["folder"], i["version"]["name"]) for i in doc["items"]] == [
        ("default", ".", "team-a/bot"), ("sql", "sql", "team-a/sql")]
    r = run_cli("push", str(two_named), "--name", "team-a/only-sql", "--adapter", "sql", env=env)
    assert r.returncode == 0, r.stderr
    assert "created team-a/only-sql@1" in r.stdout and "not pushed: chat" in r.stdout


def test_push_all_of_a_single_adapter_folder_is_that_one_push(registry, tiny_adapter, tmp_path):
    res = registry.push_all(tiny_adapter, name="bot")
    assert [(i.adapter, i.folder, i.version.ref) for i in res.items] == [("default", ".", "bot@1")]
    run = tmp_path / "run"
    shutil.copytree(tiny_adapter, run / "checkpoint-10")
    res = registry.push_all(run, name="bot", checkpoint="last")
    assert [(i.adapter, i.folder, i.version.version) for i in res.items] == [("default", "checkpoint-10", 1)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidAdapter, match="missing adapter_config.json"):
        registry.push_all(tmp_path / "empty", name="bot")


def test_a_named_adapter_folder_that_is_a_symlink_is_refused(registry, default_and_named, tmp_path):
    folder = tmp_path / "multi"
    shutil.copytree(default_and_named, folder, ignore=shutil.ignore_patterns("sql"))
    (folder / "sql").symlink_to(default_and_named / "sql")
    with pytest.raises(AdapterValidationFailed, match="symlink"):
        registry.push_all(folder, name="bot")
    assert registry.search(name="bot").items == ()


@pytest.mark.parametrize("maps,needle", [
    (["sql=team-a/a", "sql=team-a/b"], "--map names adapter 'sql' twice"),
    (["sqlteam-a/x"], "--map takes ADAPTER=NAME, not 'sqlteam-a/x'"),
])
def test_a_map_entry_twice_or_without_equals_is_refused_in_one_line(registry, default_and_named, maps, needle):
    """Before: a duplicate made the CLI end in a StopIteration traceback."""
    args = [a for m in maps for a in ("--map", m)]
    r = run_cli("push", str(default_and_named), "--name", "team-a/bot", *args, env=cli_env(registry.settings))
    assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert registry.search(name="bot").items == ()


def test_the_push_all_route_refuses_a_map_entry_without_equals(sqlite_registry, tiny_llama, default_and_named):
    """Before: the route dropped an entry without "=" and pushed the adapter under its default name."""
    from fastapi.testclient import TestClient

    from registry.api import create_app

    reg = sqlite_registry
    token = reg.tokens.create("a", scope="write", namespace="team-a").token
    files = [("files", (p.relative_to(default_and_named).as_posix(), p.read_bytes(), "application/octet-stream"))
             for p in sorted(default_and_named.rglob("*")) if p.is_file()]
    with TestClient(create_app(reg)) as c:
        for maps in (["sqlteam-a/x"], ["sql=team-a/a", "sql=team-a/b"]):
            r = c.post("/api/v1/adapters/team-a/bot/push-all", headers={"Authorization": f"Bearer {token}"},
                       files=files, data={"map": maps})
            assert r.status_code == 400, r.text
            assert r.json()["error"] == "invalid_input" and "--map" in r.json()["message"]
    assert reg.search(name="team-a/bot").items == ()


def test_a_failure_after_the_checks_creates_none_of_the_versions(registry, default_and_named, tmp_path):
    """Before: each adapter was stored and its version created in turn, so when the second one's files
    failed to store (here: changed after the checks, while the first was uploading), the first stayed."""
    from registry.errors import IntegrityFailure

    multi = shutil.copytree(default_and_named, tmp_path / "multi")
    w = multi / "sql" / "adapter_model.safetensors"

    original = w.read_bytes()

    def change_sql_weights(stage: str, done: int, total: int) -> None:
        w.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # same size, not the bytes checked

    with pytest.raises(IntegrityFailure):
        registry.push_all(multi, name="bot", progress=change_sql_weights)
    assert registry.search(name="bot").items == () and registry.search(name="bot-sql").items == ()
