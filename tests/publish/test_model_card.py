"""The merged model's card (README.md), as the Hugging Face Hub reads it: parsed back with huggingface_hub.

`base_model` is the base's Hub id (never the registry's name), the base's license, language and
pipeline_tag are carried, and the version's evaluations are the card's `model-index`.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.factories import add_verification

HUB_ID = "Meta-Llama/Llama-3.2-1B"
LM_EVAL = Path(__file__).resolve().parents[1] / "data" / "lm_eval" / "results_5shot.json"
BASE_CARD = {"license": "llama3.2", "pipeline_tag": "text-generation", "language": ["en", "de"],
             "tags": ["facebook", "llama-3"], "library_name": "transformers"}


def registered(reg, tiny_llama, tiny_adapter, tmp_path, *, hub_id: str | None) -> str:
    """A base registered with its Hub id and its own README card, an adapter on it, a hand-written
    metric recorded twice and a real lm-eval results file imported."""
    import shutil

    from huggingface_hub import ModelCard, ModelCardData

    base = tmp_path / "base-with-card"
    shutil.copytree(tiny_llama, base)
    if hub_id:
        ModelCard.from_template(ModelCardData(**BASE_CARD)).save(base / "README.md")
    reg.add_base(base, name="tiny-llama", hub_id=hub_id)
    v = reg.push(tiny_adapter, name="team-a/support-bot", base="tiny-llama")
    reg.add_eval(v.ref, {"acc": 0.5}, dataset="mmlu", split="test")
    reg.add_eval(v.ref, {"acc": 0.64}, dataset="mmlu", split="test")  # the current value wins
    reg.add_lm_eval(v.ref, LM_EVAL)  # written by a real lm_eval 0.4.13 run (tests/data/lm_eval)
    return v.ref


def test_merged_card_names_the_base_by_hub_id_with_its_license_and_the_evals_as_model_index(
        sqlite_registry, tiny_llama, tiny_adapter, tmp_path):
    from huggingface_hub import ModelCard, metadata_load
    from huggingface_hub.repocard_data import model_index_to_eval_results

    reg = sqlite_registry
    ref = registered(reg, tiny_llama, tiny_adapter, tmp_path, hub_id=HUB_ID)
    art = reg.merge(ref, dtype="fp32")
    card = ModelCard.load(art.path / "README.md")
    d = card.data
    assert d.base_model == HUB_ID and d.base_model_relation == "merge" and d.library_name == "transformers"
    assert (d.license, d.pipeline_tag, d.language) == ("llama3.2", "text-generation", ["en", "de"])
    assert {"adapter-registry", "lora", "peft", "merged", "facebook", "llama-3"} <= set(d.tags)
    assert d.adapter_registry["adapter"] == {"name": "team-a/support-bot", "version": 1,
                                             "digest": reg.show(ref).content_digest}
    assert d.adapter_registry["base"]["name"] == "tiny-llama"

    name, results = model_index_to_eval_results(metadata_load(art.path / "README.md")["model-index"])
    assert name == "team-a/support-bot"
    by = {r.metric_name: r for r in results}
    assert {"acc", "tiny_gen/exact_match,strict-match@5shot", "tiny_mc/acc,none@5shot"} <= set(by)
    acc, gen = by["acc"], by["tiny_gen/exact_match,strict-match@5shot"]
    assert (acc.metric_type, acc.metric_value, acc.dataset_type, acc.dataset_split) == ("acc", 0.64, "mmlu", "test")
    assert acc.task_type == "text-generation" and acc.dataset_args is None
    assert (gen.metric_type, gen.metric_config, gen.dataset_name, gen.dataset_args) == (
        "exact_match", "strict-match", "tiny_gen", {"num_few_shot": 5})
    assert by["tiny_mc/acc,none@5shot"].metric_value == 0.25
    # the standard error: model-index has no place for it, the card's table has
    assert "0.0993" in card.text


def test_without_a_hub_id_the_card_names_no_base_model_and_the_registry_base_in_its_own_section(
        sqlite_registry, tiny_llama, tiny_adapter, tmp_path):
    from huggingface_hub import ModelCard

    reg = sqlite_registry
    ref = registered(reg, tiny_llama, tiny_adapter, tmp_path, hub_id=None)
    d = ModelCard.load(reg.merge(ref, dtype="fp32").path / "README.md").data
    # "tiny-llama" is not a Hub repo, and the adapter config's base_model_name_or_path names what it
    # was trained on (here a local folder), not what it was merged into: no base_model rather than a wrong one
    assert d.base_model is None and getattr(d, "base_model_relation", None) is None
    assert d.license is None and d.library_name == "transformers"
    assert d.adapter_registry["base"] == {"name": "tiny-llama", "fingerprint": reg.show_base("tiny-llama").fingerprint}
    assert [r.metric_value for r in d.eval_results if r.metric_name == "acc"] == [0.64]


def test_a_published_folder_carries_the_same_card(sqlite_registry, tiny_llama, tiny_adapter, tmp_path):
    from huggingface_hub import ModelCard

    reg = sqlite_registry
    ref = registered(reg, tiny_llama, tiny_adapter, tmp_path, hub_id=HUB_ID)
    add_verification(reg, ref)
    dest = tmp_path / "shipped"
    job = reg.jobs.publish(ref, to=f"dir://{dest}", inline=True)
    assert job.state == "succeeded", job.error
    d = ModelCard.load(dest / "README.md").data
    assert d.base_model == HUB_ID and d.eval_results
    manifest = json.loads((dest / "manifest.json").read_text())
    assert "README.md" in manifest["files"]  # the card is one of the merged files


def test_the_card_changes_no_weight_file(tiny_llama, tiny_adapter, tmp_path):
    """The card is written beside the weights: another card, the same shards and config bytes."""
    from registry.merge import merge

    a = merge(tiny_llama, tiny_adapter, tmp_path / "a", dtype="float32")
    b = merge(tiny_llama, tiny_adapter, tmp_path / "b", dtype="float32",
              card={"base": {"name": "x", "hub_id": HUB_ID, "card": BASE_CARD},
                    "evals": [{"metric": "acc", "value": 0.5, "dataset": "mmlu"}]})
    differ = {f for f in a.files if a.files[f] != b.files.get(f)}
    assert differ == {"README.md", "manifest.json"}


def test_a_base_card_with_a_list_where_a_string_belongs_is_kept_only_in_the_hub_s_shapes_and_merges(
        sqlite_registry, tiny_llama, tiny_adapter, tmp_path):
    import shutil

    from huggingface_hub import ModelCard

    from registry.merge.card import card_text

    reg = sqlite_registry
    base = shutil.copytree(tiny_llama, tmp_path / "listy")
    (base / "README.md").write_text("---\npipeline_tag:\n- text-generation\n- x\nlicense: mit\nlanguage: en\n"
                                    "tags:\n- ok\n- 3\nlibrary_name: {a: 1}\n---\n# hi\n")
    b = reg.add_base(base, name="listy", hub_id=HUB_ID)
    assert b.card == {"license": "mit", "language": "en", "tags": ["ok"]}
    v = reg.push(tiny_adapter, name="a/c", base="listy")
    reg.add_eval(v.ref, {"acc": 0.5}, dataset="arc")
    d = ModelCard.load(reg.merge(v.ref, dtype="fp32").path / "README.md").data  # raised TypeError before
    assert (d.license, d.pipeline_tag, d.language) == ("mit", None, "en")
    # a card recorded before read_card checked shapes: the merge's card coerces too
    ev = [{"metric": "arc/acc", "value": 0.5, "task": "arc", "n_shot": 0}]
    for bad in [{"pipeline_tag": ["text-generation", "x"]}, {"license": {"a": 1}}, {"tags": "single"},
                {"language": 5}]:
        text = card_text({"adapter": {"name": "a/b", "version": 1}, "base": {"name": "b", "hub_id": "Org/X",
                                                                             "card": bad}, "evals": ev},
                         engine="peft", dtype="float32")
        assert ModelCard(text).data.base_model == "Org/X"
