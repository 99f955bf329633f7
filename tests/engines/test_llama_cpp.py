"""export --format gguf and verify --engine llama.cpp end to end on CPU (llama.cpp of llama-cpp-python 0.3.36)."""

from __future__ import annotations

import pytest

from registry.errors import InvalidInput
from registry.storage.digest import sha256_file
from registry.workflows import verify as verify_wf
from registry.workflows.export import export


def _verify(reg, ref, engines_root):
    return verify_wf.verify(reg.core, ref, base=None, dtype=None, device="cpu", engine="llama.cpp",
                            engines_dir=str(engines_root))


def test_export_gguf_lora_and_merged_are_recorded_with_their_digest(sqlite_registry, llama_env, engines_root,
                                                                    engine_llama, engine_adapter, tmp_path):
    reg = sqlite_registry
    reg.add_base(engine_llama, name="llama")
    reg.push(engine_adapter, name="bot", base="llama")
    e = export(reg.core, "bot@1", fmt="gguf", out=tmp_path / "out", outtype="f32", engines_dir=str(engines_root))
    assert e.path.is_file() and e.path.read_bytes()[:4] == b"GGUF"
    assert e.digest == sha256_file(e.path) and e.size_bytes == e.path.stat().st_size
    assert (e.converter, e.converter_version, e.merged) == ("llama.cpp", "0.3.36", False)
    entry = next(a for a in reg.audit(limit=5) if a.action == "export.create")
    assert entry.target == "bot@1" and entry.details["digest"] == e.digest
    with pytest.raises(Exception, match="already exists"):
        export(reg.core, "bot@1", fmt="gguf", out=tmp_path / "out", outtype="f32", engines_dir=str(engines_root))
    m = export(reg.core, "bot@1", fmt="gguf", out=tmp_path / "out", merged=True, outtype="f16",
               engines_dir=str(engines_root))
    assert m.merged and m.path.read_bytes()[:4] == b"GGUF" and m.path != e.path


def test_llama_cpp_serves_the_adapter_as_peft_does(sqlite_registry, llama_env, engines_root, engine_llama,
                                                   engine_adapter):
    reg = sqlite_registry
    reg.add_base(engine_llama, name="llama")
    reg.push(engine_adapter, name="bot", base="llama")
    v = _verify(reg, "bot@1", engines_root)
    assert v.passed, v.figures["reasons"]
    assert v.engine == "llama.cpp" and v.figures["engine_tokens"] == v.figures["peft_tokens"]


def test_an_rslora_adapter_is_refused_because_llama_cpp_would_mis_scale_it(sqlite_registry, llama_env,
                                                                          engines_root, engine_llama, models_dir,
                                                                          tmp_path):
    from registry.testing.tiny import build_adapter

    reg = sqlite_registry
    reg.add_base(engine_llama, name="llama")
    rs = build_adapter(engine_llama, models_dir / "engine-rslora", r=8, lora_alpha=16, seed=14, use_rslora=True,
                       scale=0.2)
    reg.push(rs, name="rs", base="llama")
    with pytest.raises(InvalidInput, match="llama.cpp.rslora"):
        export(reg.core, "rs@1", fmt="gguf", out=tmp_path / "out", engines_dir=str(engines_root))
    v = _verify(reg, "rs@1", engines_root)
    assert not v.passed and any("llama.cpp.rslora" in r for r in v.figures["reasons"])


def test_the_rslora_rule_is_needed_converted_anyway_llama_cpp_output_differs_from_peft(
        sqlite_registry, llama_env, engine_llama, models_dir):
    """What the refusal prevents: the converter takes the rsLoRA adapter without a word and llama.cpp
    then scales it by alpha/r instead of alpha/sqrt(r)."""
    from registry.testing.tiny import build_adapter
    from registry.verify import engine as E
    from registry.verify.cache import ModelCache

    rs = build_adapter(engine_llama, models_dir / "engine-rslora-raw", r=16, lora_alpha=16, seed=15,
                       use_rslora=True, scale=0.2)
    prompts = E.probe_token_ids(engine_llama)
    answer = verify_wf.engine_runs(sqlite_registry.core, "llama.cpp", llama_env, engine_llama, "raw" * 8,
                                   [("rs", rs)], prompts, dtype="float32")
    assert not answer["errors"], answer["errors"]
    ref = E.reference(ModelCache(), engine_llama, rs, base_key="raw", adapter_key="rs", dtype="float32",
                      prompts=prompts)
    _figures, reasons = E.judge("llama.cpp", ref, answer["base"], answer["adapters"]["rs"], dtype="float32")
    assert reasons, "llama.cpp matched peft on an rsLoRA adapter: the rule would be wrong"
