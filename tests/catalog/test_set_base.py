"""A version pushed without --base can get one later (`version set-base`): audited, content and
digest unchanged, the checks push runs against a base re-run; before, merge said "push it again
with --base" and pushing again said "unchanged"."""

from __future__ import annotations

import json

import pytest

from registry.errors import Conflict, InvalidInput
from tests.factories import run_cli


def test_a_version_pushed_without_a_base_gets_one_and_then_merges(registry, tiny_llama, tiny_adapter):
    v = registry.push(tiny_adapter, name="bot")  # its base is not registered yet
    assert v.base is None
    registry.add_base(tiny_llama, name="llama")
    again = registry.push(tiny_adapter, name="bot", base="llama")  # the old way out: refused as unchanged
    assert not again.created and again.base is None
    out = registry.set_base("bot@1", "llama")
    assert out.base.name == "llama" and out.compat_status == "ok"
    assert out.content_digest == v.content_digest and out.version == 1
    assert [a.action for a in registry.audit(target="bot@1")][0] == "version.set_base"
    registry.add_eval("bot@1", {"acc": 0.5})
    assert [i.ref for i in registry.search(base="llama", metrics=["acc>=0.1"]).items] == ["bot@1"]
    assert registry.merge("bot@1").manifest_digest


def test_a_base_the_adapter_does_not_fit_is_refused_and_nothing_changes(registry, tiny_gpt2, tiny_adapter):
    registry.add_base(tiny_gpt2, name="gpt2")
    registry.push(tiny_adapter, name="bot")
    with pytest.raises(InvalidInput):
        registry.set_base("bot@1", "gpt2")
    assert registry.show("bot@1").base is None


def test_replacing_a_recorded_base_needs_force(registry, tiny_llama, tiny_llama_other, tiny_adapter):
    registry.add_base(tiny_llama, name="llama")
    registry.add_base(tiny_llama, name="llama-copy")
    registry.push(tiny_adapter, name="bot", base="llama")
    with pytest.raises(Conflict, match="already has base"):
        registry.set_base("bot@1", "llama-copy")
    assert registry.set_base("bot@1", "llama-copy", force=True).base.name == "llama-copy"


def test_the_cli_sets_the_base(tmp_path, tiny_llama, tiny_adapter):
    env = {"ADAPTER_REGISTRY_HOME": str(tmp_path / "home")}
    assert run_cli("push", tiny_adapter, "--name", "bot", env=env).returncode == 0
    assert run_cli("base", "add", tiny_llama, "--name", "llama", env=env).returncode == 0
    p = run_cli("version", "set-base", "bot@1", "llama", "--json", env=env)
    assert p.returncode == 0 and json.loads(p.stdout)["base"]["name"] == "llama"
    assert run_cli("version", "set-base", "bot@1", "nope", env=env).returncode == 3
