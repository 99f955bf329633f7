"""One suite, two implementations: every method of registry.protocol.RegistryProtocol (and of its
`jobs` and `release` parts) runs through the same assertions against a local Registry and against
registry.Client over a real server. tests/contract/test_signatures.py checks the signatures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from registry import errors as E


@pytest.fixture(scope="module")
def trainer_output(models_dir, tiny_adapter) -> Path:
    """A Trainer/TRL output root: checkpoint-N/ adapters, trainer_state.json, training_args.bin, optimizer state."""
    import torch
    from transformers import TrainingArguments

    from registry.testing.tiny import write_trainer_output

    out = write_trainer_output(tiny_adapter, models_dir / "contract-trainer", steps=(10, 20))
    args = TrainingArguments(output_dir=str(out), learning_rate=3e-4, num_train_epochs=2,
                             per_device_train_batch_size=8, report_to=[])
    torch.save(args, out / "training_args.bin")
    torch.save({"state": {}}, out / "checkpoint-20" / "optimizer.pt")
    return out


@pytest.fixture(scope="module")
def lm_eval_file(models_dir) -> Path:
    p = models_dir / "contract-lm-eval.json"
    p.write_text(json.dumps({
        "results": {"arc_easy": {"alias": "arc_easy", "acc,none": 0.61, "acc_stderr,none": 0.01,
                                 "acc_norm,none": 0.58}},
        "n-shot": {"arc_easy": 0}, "lm_eval_version": "0.4.13", "model_name": "hf"}))
    return p


@pytest.fixture
def filled(reg, tiny_llama, tiny_adapter, tiny_adapter2):
    reg.add_base(tiny_llama, name="tiny", revision="r1")
    reg.push(tiny_adapter, name="team-a/bot", base="tiny", tags=["task=support"], description="first")
    reg.push(tiny_adapter2, name="team-a/bot", base="tiny", tags={"task": "support"})
    return reg


# -- bases ------------------------------------------------------------------------------------------
def test_add_base_registers_by_fingerprint_once(reg, tiny_llama):
    b = reg.add_base(tiny_llama, name="tiny", revision="r1")
    assert b.created and b.name == "tiny" and b.revision == "r1" and len(b.fingerprint) == 64
    again = reg.add_base(tiny_llama, name="tiny", revision="r1")
    assert not again.created and again.fingerprint == b.fingerprint
    assert [x.fingerprint for x in reg.list_bases()] == [b.fingerprint]
    assert reg.list_bases("tiny")[0].name == "tiny" and reg.list_bases("other") == []
    assert reg.show_base("tiny").fingerprint == b.fingerprint
    assert reg.show_base("tiny@r1").fingerprint == b.fingerprint


def test_add_base_records_a_hub_id_and_finds_the_base_by_it(reg, tiny_llama):
    b = reg.add_base(tiny_llama, name="tiny", revision="c0ffee1", hub_id="Org/Tiny-Llama")
    assert (b.hub_id, b.revision, b.card) == ("Org/Tiny-Llama", "c0ffee1", {})
    assert reg.show_base("org/tiny-llama").fingerprint == b.fingerprint  # the Hub's ids ignore case
    assert reg.list_bases("tiny")[0].hub_id == "Org/Tiny-Llama"
    with pytest.raises(E.InvalidInput):
        reg.add_base(tiny_llama, name="tiny2", hub_id="no spaces/allowed here")


def test_add_base_with_stored_weights_stores_them(reg, tiny_llama):
    b = reg.add_base(tiny_llama, name="stored", store_weights=True, full_hash=True)
    assert b.weights_stored


# -- push and reads -----------------------------------------------------------------------------------
def test_push_then_every_read_agrees(filled):
    reg = filled
    v1, v2 = reg.show("team-a/bot@1"), reg.show("team-a/bot")
    assert (v1.version, v2.version) == (1, 2) and v1.base.name == "tiny" and v1.description == "first"
    assert v1.tags == {"task": "support"} and v1.rank == 4 and v2.rank == 8
    assert {f.path for f in v1.files} >= {"adapter_config.json", "adapter_model.safetensors"}
    assert reg.get("team-a/bot@1").content_digest == v1.content_digest
    page = reg.search(name="team-a/", min_rank=8, count=True)
    assert [v.ref for v in page.items] == ["team-a/bot@2"] and page.total == 1
    assert [v.ref for v in reg.search(tags={"task": "support"}, sort="created").items] == ["team-a/bot@2",
                                                                                           "team-a/bot@1"]
    assert [v.version for v in reg.adapter("team-a/bot").versions] == [2, 1]
    folder = reg.resolve("team-a/bot@1")
    for f in v1.files:
        assert (folder / f.path).stat().st_size == f.size
    assert reg.merged("team-a/bot@1") == []


def test_second_push_of_the_same_files_returns_the_same_version(reg, tiny_llama, tiny_adapter):
    reg.add_base(tiny_llama, name="tiny")
    a = reg.push(tiny_adapter, name="bot", base="tiny")
    b = reg.push(tiny_adapter, name="bot", base="tiny")
    assert a.created and not b.created and a.version == b.version == 1


def test_push_of_a_trainer_output_records_the_training_arguments(reg, tiny_llama, trainer_output):
    """A remote push used to skip training_args.bin, which a local push parses."""
    reg.add_base(tiny_llama, name="tiny")
    v = reg.push(trainer_output, name="trained", base="tiny")
    t = reg.show(v.ref).training
    assert t["selected_checkpoint"] == "checkpoint-20" and t["global_step"] == 20 and t["loss_curve"]
    assert t["args"]["learning_rate"] == 3e-4 and t["args"]["per_device_train_batch_size"] == 8
    assert t["args_class"].endswith("TrainingArguments")
    assert "optimizer.pt" not in {f.path for f in reg.show(v.ref).files}


def test_resolve_to_a_local_dir_and_load_on_the_base(filled, tmp_path, tiny_adapter):
    """The admin's client is shown the base's folder: both load the adapter on it, and resolve's
    `local_dir` is a copy the caller owns. A version without a base cannot be loaded, either way."""
    import torch
    from peft import PeftModel

    reg = filled
    copy = reg.resolve("team-a/bot@1", local_dir=tmp_path / "mine")
    assert copy == tmp_path / "mine" and (copy / "adapter_model.safetensors").is_file()
    with pytest.raises(E.AlreadyExists):
        reg.resolve("team-a/bot@1", local_dir=copy)
    model = reg.load("team-a/bot@1", dtype="fp32")
    assert isinstance(model, PeftModel) and next(model.parameters()).dtype == torch.float32
    import shutil

    loose = shutil.copytree(tiny_adapter, tmp_path / "loose")
    cfg = json.loads((loose / "adapter_config.json").read_text())
    (loose / "adapter_config.json").write_text(json.dumps({**cfg, "base_model_name_or_path": "nobody/unknown"}))
    reg.push(loose, name="loose")  # no base recorded, none recognised
    with pytest.raises(E.BaseModelNotFound) as e:
        reg.load("loose@1")
    assert "set-base" in e.value.hint
    with pytest.raises(E.BaseModelNotFound) as e:
        reg.load_merged("loose@1")
    assert "set-base" in e.value.hint


# -- evals --------------------------------------------------------------------------------------------
def test_add_eval_keeps_dataset_split_source_and_details(filled):
    reg = filled
    out = reg.add_eval("team-a/bot@1", {"acc": 0.5}, dataset="d", split="test", details={"seed": 3})
    assert [(e.metric, e.value, e.dataset, e.split, e.source) for e in out] == [("acc", 0.5, "d", "test", "manual")]
    out = reg.add_eval("team-a/bot@1", ["acc=0.7", "f1=0.25"])
    assert sorted((e.metric, e.value) for e in out) == [("acc", 0.7), ("f1", 0.25)]
    evs = reg.evals("team-a/bot@1")
    assert [e.value for e in evs if e.metric == "acc"] == [0.5, 0.7]
    assert evs[0].details == {"seed": 3}
    assert reg.show("team-a/bot@1").metrics == {"acc": 0.7, "f1": 0.25}


def test_lm_eval_import_stores_the_details(filled, lm_eval_file):
    """`--remote eval add --from-lm-eval` used to drop the details (version, n-shot, file)."""
    out = filled.add_lm_eval("team-a/bot@2", lm_eval_file)
    assert {e.metric: e.value for e in out} == {"arc_easy/acc,none@0shot": 0.61, "arc_easy/acc_norm,none@0shot": 0.58}
    assert {e.source for e in out} == {"lm-eval"}
    for e in filled.evals("team-a/bot@2"):
        assert e.details["lm_eval_version"] == "0.4.13" and e.n_shot == 0 and e.task == "arc_easy"
        assert e.details["file"] == "contract-lm-eval.json"
    assert {e.metric: e.stderr for e in out} == {"arc_easy/acc,none@0shot": 0.01, "arc_easy/acc_norm,none@0shot": None}
    m = filled.show("team-a/bot@2").metrics
    assert m["arc_easy"] == m["arc_easy/acc"] == m["arc_easy/acc@0shot"] == 0.61


def test_audit_lists_the_writes_newest_first(filled):
    rows = filled.audit(limit=10)
    assert rows[0].action == "version.create" and rows[0].target == "team-a/bot@2"
    assert [a.target for a in filled.audit(target="team-a/bot@1")] == ["team-a/bot@1"]


# -- jobs ---------------------------------------------------------------------------------------------
def test_jobs_enqueue_list_get_cancel_retry_and_wait(filled):
    jobs = filled.jobs
    j = jobs.verify("team-a/bot@1", dtype="bf16")
    assert j.created and j.kind == "verify" and j.state == "queued" and j.payload["ref"] == "team-a/bot@1"
    assert jobs.verify("team-a/bot", dtype="bf16").id != j.id  # latest is @2: another job
    assert jobs.verify("team-a/bot@1", dtype="bfloat16").id == j.id  # the same one while queued
    assert jobs.get(j.id).id == j.id
    assert j.id in [x.id for x in jobs.list(kind="verify", state="queued")]
    m = jobs.merge_async("team-a/bot@1", dtype="fp32", device="cpu")
    assert m.kind == "merge" and m.payload["device"] == "cpu"
    with pytest.raises(E.JobTimeout):
        jobs.wait(m.id, timeout=0.2, poll_s=0.05)
    assert jobs.cancel(j.id).state == "cancelled"
    assert jobs.wait(j.id, timeout=5).state == "cancelled"
    assert jobs.retry(j.id).state == "queued"
    assert jobs.workers() == [] and jobs.workers(include_stopped=True) == []
    with pytest.raises(E.JobNotFound):
        jobs.get(10_000)


def test_publish_of_an_unverified_version_is_refused_before_it_is_queued(filled, tmp_path):
    with pytest.raises(E.PolicyViolation, match="no verification against tiny@r1 in float32"):
        filled.jobs.publish("team-a/bot@1", to=f"dir://{tmp_path / 'out'}")
    assert filled.jobs.list(kind="publish") == []
    j = filled.jobs.publish("team-a/bot@1", to=f"dir://{tmp_path / 'out'}", force=True)
    assert j.kind == "publish" and j.state == "queued" and j.payload["dtype"] == "float32"


# -- release ------------------------------------------------------------------------------------------
def test_aliases_history_removal_deprecation_and_events(filled):
    rel = filled.release
    ch = rel.set_alias("team-a/bot", "production", 1, reason="launch")
    assert (ch.from_version, ch.to_version, ch.changed) == (None, 1, True)
    assert rel.set_alias("team-a/bot", "production", "v2").from_version == 1
    assert [(a.alias, a.version) for a in rel.aliases("team-a/bot")] == [("production", 2)]
    assert filled.show("team-a/bot@production").version == 2
    assert [(m.from_version, m.to_version) for m in rel.alias_history("team-a/bot")] == [(None, 1), (1, 2)]
    assert rel.alias_history("team-a/bot", "production", limit=1)[0].to_version == 2
    assert rel.remove_alias("team-a/bot", "production").to_version is None
    d = rel.deprecate("team-a/bot@1", successor="team-a/bot@2", reason="old")
    assert d.deprecated and d.deprecation_reason == "old"
    kinds = [e.kind for e in rel.events(kinds=["alias."])]
    assert kinds == ["alias.set", "alias.set", "alias.remove"]
    assert rel.events(after_id=10_000) == []


# -- errors -------------------------------------------------------------------------------------------
def test_errors_are_the_same_exceptions(filled, tmp_path):
    reg = filled
    with pytest.raises(E.AdapterNotFound) as e:
        reg.show("nope")
    assert e.value.status == 404 and e.value.exit_code == 3 and isinstance(e.value, LookupError)
    with pytest.raises(E.VersionNotFound):
        reg.get("team-a/bot@9")
    with pytest.raises(E.BaseModelNotFound):
        reg.show_base("nope")
    with pytest.raises(E.InvalidAdapter):
        reg.push(tmp_path, name="empty")
    with pytest.raises(E.InvalidInput):
        reg.add_eval("team-a/bot@1", ["acc"])
    with pytest.raises(E.InvalidName):
        reg.adapter("Bad Name")
    with pytest.raises(E.VersionNotFound):
        reg.release.remove_alias("team-a/bot", "never-set")
    with pytest.raises(E.InvalidInput):
        reg.jobs.publish("team-a/bot@2", to="ftp://nowhere/x", force=True)


def test_close_can_be_called_twice(reg):
    reg.close()
    reg.close()


def test_every_protocol_method_is_exercised_here():
    """The suite covers the whole contract: each protocol method is called somewhere in its files."""
    from registry.protocol import PROTOCOLS, methods

    source = "".join(p.read_text() for p in sorted(Path(__file__).parent.glob("test_*.py")))
    missing = [f"{part or 'registry'}.{m}" for part, proto in PROTOCOLS.items() for m in methods(proto)
               if not re.search(rf"\.{m}\(", source)]
    assert missing == []
