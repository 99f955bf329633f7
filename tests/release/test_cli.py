"""The release commands end to end through the CLI entry point (SQLite), including exit codes."""

from __future__ import annotations

import json

import pytest

from tests.factories import run_cli


@pytest.fixture
def run(tmp_path):
    """Run `adapter-registry ARGS` in-process; returns (exit code, stdout, stderr)."""
    base = ["--home", str(tmp_path / "home")]

    def go(*args: str):
        r = run_cli(*base, *args, env={"ADAPTER_REGISTRY_ACTOR": "cli-user"})
        return r.returncode, r.stdout, r.stderr

    return go


@pytest.fixture
def bot(run, tiny_llama, adapters):
    assert run("base", "add", tiny_llama, "--name", "llama", "--revision", "r1")[0] == 0
    for a in adapters[:2]:
        assert run("push", a, "--name", "bot", "--base", "llama")[0] == 0
    return run


def test_cli_alias_set_and_history_as_table_and_json(bot):
    assert bot("alias", "set", "bot", "production", "1", "--reason", "launch")[0] == 0
    code, out, _ = bot("alias", "set", "bot", "production", "2")
    assert code == 0 and "1 -> 2" in out
    code, out, _ = bot("alias", "history", "bot", "--json")
    moves = json.loads(out)
    assert [(m["from_version"], m["to_version"], m["actor"]) for m in moves] == [(None, 1, "cli-user"),
                                                                              (1, 2, "cli-user")]
    assert moves[0]["reason"] == "launch"
    code, out, _ = bot("alias", "history", "bot")
    assert "launch" in out and "production" in out
    code, out, _ = bot("show", "bot@production", "--json")
    assert json.loads(out)["version"] == 2
    assert json.loads(bot("alias", "ls", "bot", "--json")[1])[0]["version"] == 2


def test_cli_refused_promotion_exits_non_zero_with_the_reasons_and_changes_nothing(bot):
    bot("alias", "set", "bot", "production", "1")
    code, out, _ = bot("alias", "protect", "bot", "production", "--require-verified",
                       "--require-metric", "mmlu>=0.62")
    assert code == 0 and "does NOT pass" in out
    bot("eval", "add", "bot@2", "--metric", "mmlu=0.58")
    code, out, err = bot("alias", "set", "bot", "production", "2")
    assert code == 4
    assert "no verification against llama@r1" in err and "mmlu is 0.58, needs >= 0.62" in err and "--force" in err
    assert json.loads(bot("show", "bot@production", "--json")[1])["version"] == 1
    assert bot("alias", "check", "bot", "production", "2")[0] == 4
    code, out, _ = bot("alias", "set", "bot", "production", "2", "--force", "--reason", "incident 12")
    assert code == 0 and "OVERRIDDEN" in out
    last = json.loads(bot("alias", "history", "bot", "production", "--json")[1])[-1]
    assert last["overridden"] and last["violations"] and last["reason"] == "incident 12"


def test_cli_deprecate_delete_and_events(bot):
    code, out, _ = bot("deprecate", "bot@1", "--successor", "bot@2", "--reason", "old")
    assert code == 0 and "successor bot@2" in out
    assert [v["version"] for v in json.loads(bot("ls", "--json")[1])["items"]] == [2]
    bot("alias", "set", "bot", "production", "2")
    bot("alias", "protect", "bot", "production")
    code, _, err = bot("delete", "bot@2")
    assert code == 4 and "protected alias production" in err
    assert bot("delete", "bot@1")[0] == 0
    code, out, _ = bot("events", "--kind", "version.", "--json")
    assert [e["kind"] for e in json.loads(out)] == ["version.create", "version.create", "version.deprecate",
                                                   "version.delete"]


def test_cli_impact_with_reverify_and_bulk_promote_dry_run(bot, tiny_llama):
    bot("base", "add", tiny_llama, "--name", "llama", "--revision", "r2")
    code, out, _ = bot("impact", "llama", "--reverify", "--json")
    rep = json.loads(out)
    assert code == 0 and [v["ref"] for v in rep["versions"]] == ["bot@1", "bot@2"] and len(rep["jobs"]) == 2
    code, out, _ = bot("bulk", "promote", "--name", "bot", "--select", "latest", "--dry-run", "--json")
    res = json.loads(out)
    assert code == 0 and res["dry_run"] and res["items"][0]["ref"] == "bot@2"
    assert bot("show", "bot@production")[0] == 3  # the dry run set nothing: not found
    code, out, _ = bot("bulk", "tag", "--name", "bot", "--set", "team=a")
    assert code == 0 and "2 changed" in out


def test_cli_serving_profile_prints_vllm_flags_and_json(bot):
    bot("alias", "set", "bot", "production", "2")
    code, out, _ = bot("serving-profile", "--base", "llama")
    assert code == 0 and "vllm serve" in out and "--max-lora-rank 8" in out and "bot=" in out
    prof = json.loads(bot("serving-profile", "--base", "llama", "--json")[1])
    assert prof["max_lora_rank"] == 8 and prof["max_loras"] == 1 and prof["lora_dtype"] == "auto"
    assert prof["target_modules"] == ["q_proj", "v_proj"]


def test_cli_gc_dry_run_then_delete(bot):
    bot("delete", "bot@2")
    code, out, _ = bot("gc", "--dry-run", "--grace", "0", "--json")
    assert code == 0 and json.loads(out)["deleted"] and json.loads(out)["dry_run"]
    code, out, _ = bot("gc", "--grace", "0")
    assert code == 0 and out.startswith("deleted ") and "freed" in out


def _record_verification(home, ref: str, *, engine: str, passed: bool = True) -> None:
    """A recorded verification of `ref` by `engine` (what `verify --engine` stores after running it)."""
    from registry.catalog import queries as Q
    from registry.refs import parse_ref
    from registry.workflows.verify import Result
    from tests.factories import open_registry

    reg = open_registry(home)
    with reg.core.db.write() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        versions = {} if engine == "peft" else {"engine": engine, "engine_version": "0.32.0"}
        Result(ref, row.id, row.base_model_id, passed, (), "cpu", "float32", {}, 0.1, versions, engine).record(s)
    reg.close()


def test_an_alias_can_require_a_verification_on_a_serving_engine(bot, tmp_path):
    code, out, _ = bot("alias", "protect", "bot", "production", "--require-verified", "vllm", "--json")
    policy = json.loads(out)
    assert code == 0 and policy["require_verified_engines"] == ["vllm"] and policy["require_verified"] is False
    _record_verification(tmp_path / "home", "bot@2", engine="peft")
    code, _, err = bot("alias", "set", "bot", "production", "2")
    assert code == 4 and "vllm" in err  # verified in peft only: not enough
    _record_verification(tmp_path / "home", "bot@2", engine="vllm")
    assert bot("alias", "set", "bot", "production", "2")[0] == 0
    code, out, _ = bot("alias", "protect", "bot", "production", "--require-verified", "--require-verified", "vllm")
    assert code == 0 and "verified against its base, verified on vllm" in out


def test_require_verified_names_only_known_engines(bot):
    code, _, err = bot("alias", "protect", "bot", "production", "--require-verified", "sglang")
    assert code == 2 and "sglang" in err
