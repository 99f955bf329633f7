"""Lookups over what peft really writes (issue 12): `--target-module` on all-linear and regex
adapters, rank filters over rank_pattern, and the alpha of every PEFT type that has one.

On main before issue 12: `ls --target-module q_proj` missed every all-linear adapter (peft saves
qualified names, which were stored as they are), `--max-rank 4` listed an r=4 adapter with v_proj
at 8, and LoHa/LoKr versions showed alpha null.
"""

from __future__ import annotations

import json
import shutil

import pytest

from registry.adapters.targets import leaf_targets
from registry.testing.tiny import build_adapter
from tests.factories import run_cli


@pytest.fixture(scope="module")
def all_linear(tmp_path_factory, tiny_llama):
    """A LoRA adapter trained with target_modules="all-linear": peft saves the qualified names."""
    return build_adapter(tiny_llama, tmp_path_factory.mktemp("al") / "a", target_modules="all-linear")


def refs(page):
    return [v.ref for v in page.items]


def _saved_leaves(adapter) -> list[str]:
    return sorted({t.rsplit(".", 1)[-1] for t in json.loads((adapter / "adapter_config.json").read_text())
                   ["target_modules"]})


def test_an_all_linear_adapter_is_found_by_leaf_module_name(registry, tiny_llama, all_linear):
    saved = json.loads((all_linear / "adapter_config.json").read_text())["target_modules"]
    assert "model.layers.0.self_attn.q_proj" in saved  # what peft writes
    registry.add_base(tiny_llama, name="llama")
    v = registry.push(all_linear, name="al", base="llama")
    no_base = registry.push(all_linear, name="al-nobase")  # leaf names need no base
    assert set(refs(registry.search(target_modules=["q_proj"]))) == {v.ref, no_base.ref}
    assert set(refs(registry.search(target_modules=["q_proj", "down_proj"]))) == {v.ref, no_base.ref}
    assert refs(registry.search(target_modules=["model.layers.0.self_attn.q_proj"])) == []
    shown = registry.show(v.ref)
    assert shown.target_modules == tuple(sorted(saved))  # kept as saved
    assert shown.target_module_names == ("down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj")


@pytest.mark.parametrize("model", ["tiny_llama", "tiny_gpt2"])
def test_all_linear_expanded_from_the_layout_equals_what_peft_targets(request, tmp_path, model, registry):
    base = request.getfixturevalue(model)
    adapter = build_adapter(base, tmp_path / "a", target_modules="all-linear")
    b = registry.add_base(base, name="b")
    with registry.db.read() as s:
        from registry.catalog import queries as Q

        layout = Q.get_base(s, b.ref).layout
    names, resolved = leaf_targets("all-linear", layout, task_type="CAUSAL_LM")
    assert resolved and names == _saved_leaves(adapter)  # Linear and Conv1D; no lm_head, wte, wpe


def test_an_unexpanded_all_linear_config_is_expanded_when_the_base_is_set(registry, tiny_llama, all_linear,
                                                                         tmp_path):
    # what LoraConfig(target_modules="all-linear").save_pretrained writes before the model expands it
    d = shutil.copytree(all_linear, tmp_path / "literal")
    conf = json.loads((d / "adapter_config.json").read_text())
    conf["target_modules"] = "all-linear"
    (d / "adapter_config.json").write_text(json.dumps(conf))
    v = registry.push(d, name="lit")
    assert registry.show(v.ref).target_module_names == ("all-linear",)  # no base: the saved form, said so
    assert refs(registry.search(target_modules=["q_proj"])) == []
    registry.add_base(tiny_llama, name="llama")
    out = registry.set_base(v.ref, "llama")
    assert "q_proj" in out.target_module_names and "lm_head" not in out.target_module_names
    assert refs(registry.search(target_modules=["q_proj"])) == [v.ref]
    pushed_with_base = registry.push(d, name="lit2", base="llama")
    assert registry.show(pushed_with_base.ref).target_module_names == out.target_module_names


def test_a_regex_target_is_expanded_against_the_base(registry, tiny_llama, tmp_path):
    a = build_adapter(tiny_llama, tmp_path / "rx", target_modules=r".*\.(q_proj|v_proj)")
    assert json.loads((a / "adapter_config.json").read_text())["target_modules"] == r".*\.(q_proj|v_proj)"
    registry.add_base(tiny_llama, name="llama")
    v = registry.push(a, name="rx", base="llama")
    assert registry.show(v.ref).target_module_names == ("q_proj", "v_proj")
    assert refs(registry.search(target_modules=["v_proj"])) == [v.ref]
    assert refs(registry.search(target_modules=["k_proj"])) == []


def test_rank_filters_see_the_rank_pattern(registry, tiny_llama, tmp_path):
    a = build_adapter(tiny_llama, tmp_path / "rp", r=4, target_modules=["q_proj", "v_proj"], rank_pattern={"v_proj": 8})
    flat = build_adapter(tiny_llama, tmp_path / "flat", r=4, target_modules=["q_proj", "v_proj"])
    registry.add_base(tiny_llama, name="llama")
    v = registry.push(a, name="patterned", base="llama")
    f = registry.push(flat, name="flat", base="llama")
    assert (v.rank, v.min_rank, v.max_rank) == (4, 4, 8)
    assert refs(registry.search(max_rank=4)) == [f.ref]
    assert refs(registry.search(max_rank=8)) == [f.ref, v.ref]
    assert refs(registry.search(min_rank=8)) == []
    assert refs(registry.search(min_rank=4, sort="rank")) == [f.ref, v.ref]
    registry.add_eval(v.ref, ["acc=0.5"])  # the metric-sorted plan filters the same way
    assert refs(registry.search(max_rank=4, sort="metric:acc")) == []


@pytest.mark.parametrize("kind", ["LOHA", "LOKR"])
def test_loha_and_lokr_alpha_is_recorded(registry, tiny_llama, tmp_path, kind):
    from peft import LoHaConfig, LoKrConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    make = LoHaConfig if kind == "LOHA" else LoKrConfig
    cfg = make(r=4, alpha=12, target_modules=["q_proj", "v_proj"], rank_pattern={"v_proj": 2})
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), cfg).save_pretrained(tmp_path / kind)
    registry.add_base(tiny_llama, name="llama")
    v = registry.push(tmp_path / kind, name=kind.lower(), base="llama")
    assert (v.peft_type, v.alpha, v.rank, v.min_rank, v.max_rank) == (kind, 12.0, 4, 2, 4)
    assert refs(registry.search(peft_type=kind, target_modules=["v_proj"])) == [v.ref]


@pytest.mark.parametrize("kind", ["ADALORA", "RANDLORA", "SHADOW"])
def test_every_type_with_an_alpha_has_it_typed(tiny_llama, tmp_path, kind):
    # (parsed here; tests/catalog/test_adalora.py pushes real AdaLoRA saves)
    import peft
    from transformers import AutoModelForCausalLM

    from registry.adapters.peft_config import load_config

    cfg = {"ADALORA": lambda: peft.AdaLoraConfig(init_r=6, target_r=4, lora_alpha=16, total_step=10,
                                                 target_modules=["q_proj"]),
           "RANDLORA": lambda: peft.RandLoraConfig(r=4, randlora_alpha=16, target_modules=["q_proj"]),
           "SHADOW": lambda: peft.ShadowConfig(r=4, shadow_alpha=16, target_modules=["q_proj"])}[kind]()
    peft.get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), cfg).save_pretrained(tmp_path / "a")
    _conf, fields = load_config(tmp_path / "a" / "adapter_config.json")
    assert (fields.peft_type, fields.alpha) == (kind, 16.0)


def test_the_cli_lists_all_linear_adapters_by_module(tmp_path, tiny_llama, all_linear):
    env = {"ADAPTER_REGISTRY_HOME": str(tmp_path / "home")}
    assert run_cli("base", "add", tiny_llama, "--name", "llama", env=env).returncode == 0
    assert run_cli("push", all_linear, "--name", "al", "--base", "llama", env=env).returncode == 0
    p = run_cli("ls", "--target-module", "gate_proj", "--json", env=env)
    assert p.returncode == 0 and [v["name"] for v in json.loads(p.stdout)["items"]] == ["al"]
    assert "q_proj" in json.loads(run_cli("show", "al", "--json", env=env).stdout)["target_module_names"]
    literal = shutil.copytree(all_linear, tmp_path / "literal")
    conf = json.loads((literal / "adapter_config.json").read_text())
    (literal / "adapter_config.json").write_text(json.dumps({**conf, "target_modules": "all-linear",
                                                             "base_model_name_or_path": "Someone/Unregistered"}))
    assert run_cli("push", literal, "--name", "lit", env=env).returncode == 0  # no base to expand it against
    assert "not expanded: no base recorded" in run_cli("show", "lit", env=env).stdout


def test_migration_0004_rewrites_old_target_rows_as_leaf_names(sqlite_url, settings_for, tiny_llama, all_linear,
                                                                tmp_path):
    from sqlalchemy import create_engine, text

    from registry import migrate
    from registry.app import Registry

    literal = shutil.copytree(all_linear, tmp_path / "literal")
    conf = json.loads((literal / "adapter_config.json").read_text())
    conf["target_modules"] = "all-linear"
    (literal / "adapter_config.json").write_text(json.dumps(conf))
    reg = Registry(settings_for(sqlite_url))
    reg.add_base(tiny_llama, name="llama")
    reg.push(all_linear, name="qualified")
    reg.push(literal, name="literal", base="llama")
    reg.close()
    eng = create_engine(sqlite_url)  # foreign keys off: SQLite's batch downgrade recreates referenced tables
    migrate.downgrade(eng, "0003")
    with eng.begin() as c:  # the rows 0003's code wrote: target_modules as saved
        c.execute(text("DELETE FROM version_target_modules"))
        for vid, tm in c.execute(text("SELECT id, target_modules FROM adapter_versions")).all():
            for m in json.loads(tm):
                c.execute(text("INSERT INTO version_target_modules VALUES (:v, :m)"), {"v": vid, "m": m})
    migrate.upgrade(eng)
    eng.dispose()
    reg = Registry(settings_for(sqlite_url))
    assert sorted(refs(reg.search(target_modules=["q_proj"]))) == ["literal@1", "qualified@1"]
    assert reg.show("literal@1").target_module_names == reg.show("qualified@1").target_module_names
    reg.close()


def test_migration_0004_gives_old_loha_rows_their_alpha(sqlite_url, settings_for, tiny_llama, tmp_path):
    """Versions pushed before 0004 had alpha null for LoHa/LoKr (only lora_alpha was read), and pushing
    them again says "unchanged": the migration fills it from the stored config."""
    from peft import LoHaConfig, get_peft_model
    from sqlalchemy import create_engine, text
    from transformers import AutoModelForCausalLM

    from registry import migrate
    from registry.app import Registry

    cfg = LoHaConfig(r=4, alpha=12, target_modules=["q_proj"])
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), cfg).save_pretrained(tmp_path / "loha")
    reg = Registry(settings_for(sqlite_url))
    reg.push(tmp_path / "loha", name="loha")
    reg.close()
    eng = create_engine(sqlite_url)
    migrate.downgrade(eng, "0003")
    with eng.begin() as c:  # what 0003's code wrote
        c.execute(text("UPDATE adapter_versions SET alpha = NULL"))
    migrate.upgrade(eng)
    eng.dispose()
    reg = Registry(settings_for(sqlite_url))
    assert reg.show("loha@1").alpha == 12.0
    reg.close()


@pytest.mark.parametrize("exclude", [["o_proj"], r".*\.o_proj"])
def test_migration_0004_expands_all_linear_less_the_config_s_exclude_modules(sqlite_url, settings_for, tiny_llama,
                                                                           tmp_path, exclude):
    """A literal "all-linear" with exclude_modules (a list of suffixes or a regex): the rows 0004
    writes are the leaf names push writes today (leaf_targets applies exclude_modules), o_proj not among them."""
    from sqlalchemy import create_engine, text

    from registry import migrate
    from registry.app import Registry

    ad = build_adapter(tiny_llama, tmp_path / "ex", target_modules="all-linear", exclude_modules=["o_proj"])
    conf = json.loads((ad / "adapter_config.json").read_text())
    (ad / "adapter_config.json").write_text(json.dumps({**conf, "target_modules": "all-linear",
                                                        "exclude_modules": exclude}))
    reg = Registry(settings_for(sqlite_url))
    reg.add_base(tiny_llama, name="llama")
    pushed = reg.push(ad, name="ex", base="llama").target_module_names
    assert "o_proj" not in pushed and "q_proj" in pushed
    reg.close()
    eng = create_engine(sqlite_url)
    migrate.downgrade(eng, "0003")
    with eng.begin() as c:  # the row 0003's code wrote: target_modules as saved
        c.execute(text("DELETE FROM version_target_modules"))
        vid = c.execute(text("SELECT id FROM adapter_versions")).scalar()
        c.execute(text("INSERT INTO version_target_modules VALUES (:v, 'all-linear')"), {"v": vid})
    migrate.upgrade(eng)
    with eng.connect() as c:
        rows = sorted(m for (m,) in c.execute(text("SELECT module FROM version_target_modules")))
    eng.dispose()
    assert rows == sorted(pushed)
    reg = Registry(settings_for(sqlite_url))
    assert refs(reg.search(target_modules=["o_proj"])) == [] and refs(reg.search(target_modules=["q_proj"])) == ["ex@1"]
    reg.close()
