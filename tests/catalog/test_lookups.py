"""search, show, resolve and evaluations (SQLite + PostgreSQL)."""

import shutil

import pytest

from registry.errors import AdapterNotFound, IntegrityFailure, InvalidInput, VersionNotFound


@pytest.fixture
def catalog(registry, tiny_llama, tiny_llama_other, tiny_adapter, tiny_adapter2, tmp_path):
    registry.add_base(tiny_llama, name="tiny-llama")
    registry.add_base(tiny_llama_other, name="other")
    a = registry.push(tiny_adapter, name="team-a/bot", base="tiny-llama", tags=["task=chat"])
    b = registry.push(tiny_adapter2, name="team-a/summarizer", base="tiny-llama", tags=["task=sum"])
    c2 = shutil.copytree(tiny_adapter, tmp_path / "c2")
    (c2 / "README.md").write_text("v2")
    a2 = registry.push(c2, name="team-a/bot", base="tiny-llama", tags=["task=chat"])
    registry.add_eval(a.ref, ["acc=0.55", "f1=0.4"])
    registry.add_eval(b.ref, ["acc=0.71"])
    registry.add_eval(a2.ref, ["acc=0.64"])
    return registry


def refs(page):
    return [v.ref for v in page.items]


def test_filtered_search_sorted_by_metric(catalog):
    page = catalog.search(base="tiny-llama", max_rank=16, metrics=["acc>=0.6"], sort="metric:acc", limit=20)
    assert refs(page) == ["team-a/summarizer@1", "team-a/bot@2"]
    assert page.items[0].metrics["acc"] == 0.71


def test_rank_and_target_module_filters(catalog):
    assert refs(catalog.search(max_rank=4)) == ["team-a/bot@2", "team-a/bot@1"]
    assert refs(catalog.search(min_rank=8)) == ["team-a/summarizer@1"]
    assert refs(catalog.search(target_modules=["gate_proj"], sort="version", limit=1)) == ["team-a/bot@2"]
    assert refs(catalog.search(target_modules=["q_proj", "v_proj"], tags=["task=sum"])) == ["team-a/summarizer@1"]


def test_metric_comparisons_are_numeric_not_strings(catalog):
    catalog.add_eval("team-a/bot@1", ["loss=10.5"])
    catalog.add_eval("team-a/bot@2", ["loss=9.0"])
    assert refs(catalog.search(metrics=["loss<10"])) == ["team-a/bot@2"]
    assert refs(catalog.search(sort="metric:loss:asc")) == ["team-a/bot@2", "team-a/bot@1"]


def test_latest_eval_is_the_current_value(catalog):
    catalog.add_eval("team-a/bot@1", ["acc=0.9"])
    assert catalog.get("team-a/bot@1").metrics["acc"] == 0.9
    assert [e.value for e in catalog.evals("team-a/bot@1") if e.metric == "acc"] == [0.55, 0.9]


def test_search_of_other_base_and_pagination(catalog):
    assert refs(catalog.search(base="other")) == []
    p1 = catalog.search(limit=2, count=True)
    p2 = catalog.search(limit=2, offset=2)
    assert p1.total == 3 and len(p1.items) == 2 and len(p2.items) == 1
    assert set(refs(p1)) | set(refs(p2)) == {"team-a/bot@1", "team-a/bot@2", "team-a/summarizer@1"}


def test_namespace_filter(catalog):
    assert len(catalog.search(name="team-a/").items) == 3
    assert refs(catalog.search(name="team-a/summarizer")) == ["team-a/summarizer@1"]


def test_show_latest_and_numbered_versions(catalog):
    assert catalog.show("team-a/bot").version == 2
    v1 = catalog.show("team-a/bot@1")
    assert v1.version == 1 and {f.path for f in v1.files} >= {"adapter_config.json", "adapter_model.safetensors"}
    assert v1.compat["status"] == "ok" and v1.compat["modules_touched"] == 14


@pytest.mark.parametrize("ref,exc", [("nope", AdapterNotFound), ("team-a/bot@9", VersionNotFound),
                                     ("team-a/bot@production", VersionNotFound)])
def test_missing_refs_raise_not_found(catalog, ref, exc):
    with pytest.raises(exc):
        catalog.show(ref)


def test_bad_filters_are_invalid_input(catalog):
    with pytest.raises(InvalidInput):
        catalog.search(metrics=["acc>>1"])
    with pytest.raises(InvalidInput):
        catalog.search(sort="metric:")


def test_resolve_gives_a_folder_peft_loads(catalog, tiny_llama):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    path = catalog.resolve("team-a/bot@1")
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    model = PeftModel.from_pretrained(base, path)
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        out = model(ids).logits
    assert torch.isfinite(out).all()
    assert catalog.resolve("team-a/bot@1") == path  # cached, idempotent


def test_resolve_detects_a_corrupted_stored_blob(catalog):
    v = catalog.show("team-a/summarizer@1")
    w = next(f for f in v.files if f.path == "adapter_model.safetensors")
    blob = catalog.store.path(w.digest)
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityFailure):
        catalog.resolve("team-a/summarizer@1")


def test_lm_eval_results_import(catalog, tmp_path):
    import json

    f = tmp_path / "results.json"
    f.write_text(json.dumps({"results": {"mmlu": {"alias": "mmlu", "acc,none": 0.63, "acc_stderr,none": 0.01},
                                         "gsm8k": {"exact_match,strict-match": 0.4, "exact_match,flexible": 0.5}},
                             "lm_eval_version": "0.4.5"}))
    evs = catalog.add_lm_eval("team-a/bot@2", f)
    # one result per (task, metric, filter, n-shot); this file names no n-shot (docs/EVALS.md)
    assert {e.metric: e.value for e in evs} == {"mmlu/acc,none": 0.63, "gsm8k/exact_match,strict-match": 0.4,
                                                 "gsm8k/exact_match,flexible": 0.5}
    got = catalog.show("team-a/bot@2").metrics
    assert got["mmlu"] == 0.63 and got["mmlu/acc"] == 0.63 and not [k for k in got if "stderr" in k]
    assert got["gsm8k/exact_match,strict-match"] == got["gsm8k/exact_match"] == 0.4
    assert refs(catalog.search(metrics=["mmlu>=0.62"])) == ["team-a/bot@2"]


def test_search_across_base_revisions_merges_their_orders(registry, tiny_llama, tiny_adapter, tmp_path):
    """A base name covers every revision; results merge per-revision index walks in one order."""
    registry.add_base(tiny_llama, name="tl", revision="r1")
    registry.add_base(tiny_llama, name="tl", revision="r2")
    expected = []
    for i in range(6):
        d = shutil.copytree(tiny_adapter, tmp_path / f"v{i}")
        (d / "README.md").write_text(f"v{i}")
        v = registry.push(d, name=f"a{i}", base=f"tl@{'r1' if i % 2 else 'r2'}")
        registry.add_eval(v.ref, {"acc": [0.5, 0.9, 0.7, 0.6, 0.8, 0.55][i]})
        expected.append((v.ref, [0.5, 0.9, 0.7, 0.6, 0.8, 0.55][i]))
    by_acc = [r for r, _ in sorted(expected, key=lambda x: -x[1])]
    got = refs(registry.search(base="tl", sort="metric:acc", limit=3)) + \
        refs(registry.search(base="tl", sort="metric:acc", limit=3, offset=3))
    assert got == by_acc
    assert refs(registry.search(base="tl", limit=4)) == [r for r, _ in expected][::-1][:4]
    assert refs(registry.search(base="tl@r1", metrics=["acc>=0.6"], sort="metric:acc")) == ["a1@1", "a3@1"]
    assert registry.search(base="tl", count=True, limit=1).total == 6
