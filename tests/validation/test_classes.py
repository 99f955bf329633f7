"""Every class of malformed adapter or base the issue lists is refused with its code, from a real
peft / transformers save that is then broken: one line naming the problem, nothing registered, the
name free for the next push. And the valid Hub cache snapshot is accepted."""

from __future__ import annotations

import shutil

import pytest

from registry.errors import AdapterValidationFailed, BaseValidationFailed, ValidationFailed
from registry.testing.tiny import build_adapter, build_llama
from tests.validation.mutate import ADAPTER_CASES, BASE_CASES, DORA_CASES, hf_snapshot


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("classes")
    base = build_llama(root / "base")
    sharded = build_llama(root / "sharded", max_shard_size="60KB")
    lora = build_adapter(base, root / "lora", target_modules=["q_proj", "v_proj"])
    dora = build_adapter(base, root / "dora", target_modules=["q_proj", "v_proj"], use_dora=True)
    return base, sharded, lora, dora


def _counts(reg):
    return len(reg.search(include_deprecated=True, limit=1000).items)


@pytest.mark.parametrize("case", sorted({**ADAPTER_CASES, **DORA_CASES}))
def test_malformed_adapter_is_refused_with_its_code_and_nothing_registered(case, tiny, sqlite_registry, tmp_path):
    base, _sharded, lora, dora = tiny
    mutate, code = {**ADAPTER_CASES, **DORA_CASES}[case]
    folder = shutil.copytree(dora if case in DORA_CASES else lora, tmp_path / "adapter")
    mutate(folder)
    sqlite_registry.add_base(base, name="tiny")
    before = _counts(sqlite_registry)
    with pytest.raises(AdapterValidationFailed) as e:
        sqlite_registry.push(folder, name="bot", base="tiny")
    assert code in e.value.codes, e.value.findings
    assert "\n" not in str(e.value) and e.value.status == 422 and e.value.exit_code == 2
    assert all(f["hint"] and f["code"] for f in e.value.findings)
    assert _counts(sqlite_registry) == before
    # the name stays free: the unbroken adapter registers under it
    assert sqlite_registry.push(dora if case in DORA_CASES else lora, name="bot", base="tiny").version == 1


@pytest.mark.parametrize("case", sorted(BASE_CASES))
def test_malformed_base_is_refused_with_its_code_and_nothing_registered(case, tiny, sqlite_registry, tmp_path):
    _base, sharded, _lora, _dora = tiny
    mutate, code = BASE_CASES[case]
    folder = shutil.copytree(sharded, tmp_path / "base")
    mutate(folder)
    with pytest.raises(BaseValidationFailed) as e:
        sqlite_registry.add_base(folder, name="tiny")
    assert code in e.value.codes, e.value.findings
    assert "\n" not in str(e.value) and e.value.exit_code == 2
    assert sqlite_registry.list_bases() == []


def test_several_problems_in_one_folder_are_reported_together(tiny, tmp_path):
    from registry.adapters.inspect import inspect_adapter

    _base, _sharded, lora, _dora = tiny
    folder = shutil.copytree(lora, tmp_path / "adapter")
    for name in ("alpha_missing", "r_string", "trailing_bytes"):
        ADAPTER_CASES[name][0](folder)
    with pytest.raises(ValidationFailed) as e:
        inspect_adapter(folder)
    assert sorted(e.value.codes) == ["CONFIG_ALPHA_MISSING", "CONFIG_RANK_TYPE", "ST_TRAILING_BYTES"]
    assert str(e.value).endswith("(and 2 more)")


def test_a_hub_cache_snapshot_registers_and_one_linking_outside_its_repo_is_refused(tiny, sqlite_registry, tmp_path):
    base, _sharded, lora, _dora = tiny
    snap = hf_snapshot(base, tmp_path / "hub")
    b = sqlite_registry.add_base(snap, name="tiny")
    assert b.created and b.param_count > 0
    assert sqlite_registry.push(lora, name="bot", base="tiny").created
    (snap / "generation_config.json").unlink(missing_ok=True)
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{}")
    (snap / "generation_config.json").symlink_to(outside)
    with pytest.raises(BaseValidationFailed) as e:
        sqlite_registry.add_base(snap, name="tiny2")
    assert e.value.codes == ["BASE_LINK_OUTSIDE"]


def test_the_api_answers_a_refused_push_with_every_finding_in_its_context(tiny, tmp_path):
    from registry.errors import AdapterValidationFailed as AVF

    e = AVF.of([{"code": "ST_TRAILING_BYTES", "message": "w: 2 bytes after the last tensor", "file": "w",
                 "field": None, "hint": "save it again"},
                {"code": "CONFIG_ALPHA_MISSING", "message": "c: lora_alpha is missing", "file": "c",
                 "field": "lora_alpha", "hint": "h"}])
    body = e.to_dict()
    assert body["status"] == 422 and body["error"] == "adapter_validation_failed"
    assert body["message"] == "w: 2 bytes after the last tensor (and 1 more)"
    assert [f["code"] for f in body["context"]["findings"]] == ["ST_TRAILING_BYTES", "CONFIG_ALPHA_MISSING"]
