"""llama.cpp's rules for a LoRA adapter, read from the llama.cpp tree vendored by llama-cpp-python 0.3.36.

An adapter reaches llama.cpp through convert_lora_to_gguf.py (PEFT safetensors -> GGUF LoRA), which
writes one `adapter.lora.alpha` for the whole adapter; llama.cpp then scales every tensor pair by
alpha / rank-of-that-pair (src/llama-adapter.h `get_scale`). So what cannot be expressed is any
other scaling: rsLoRA (alpha / sqrt(r)) and alpha_pattern. The converter does not read use_rslora
or alpha_pattern at all: such an adapter would convert without an error and run mis-scaled.
"""

from __future__ import annotations

from registry.engines.versions import LLAMA_CPP

from .rules import EngineCheck, Facts, Rule, data_lines, verdict

PIN = LLAMA_CPP
_S = f"llama.cpp vendored by llama-cpp-python {PIN.version}"
MERGED = "export it merged (adapter-registry export --format gguf --merged)"

PEFT_TYPE = Rule("llama.cpp.peft_type", "llama.cpp", "only LoRA adapters convert (lora_A / lora_B tensors)",
                 f"convert_lora_to_gguf.py LoraModel.get_tensors ({_S})", MERGED)
DORA = Rule("llama.cpp.dora", "llama.cpp", "DoRA's lora_magnitude_vector is \"not a lora_A or lora_B tensor\"",
            f"convert_lora_to_gguf.py LoraModel.get_tensors ({_S})", MERGED)
FULL_WEIGHTS = Rule("llama.cpp.full_weights", "llama.cpp", "modules_to_save / embeddings / bias tensors are refused "
                    "(\"Unexpected name ...: Not a lora_A or lora_B tensor\")",
                    f"convert_lora_to_gguf.py LoraModel.get_tensors ({_S})", MERGED)
RSLORA = Rule("llama.cpp.rslora", "llama.cpp", "rsLoRA scaling (alpha / sqrt(r)) cannot be expressed: llama.cpp "
              "scales by alpha / r", f"convert_lora_to_gguf.py (one lora_alpha, use_rslora not read); "
              f"src/llama-adapter.h llama_adapter_lora_weight::get_scale ({_S})", MERGED)
ALPHA_PATTERN = Rule("llama.cpp.alpha_pattern", "llama.cpp", "alpha_pattern cannot be expressed: the GGUF adapter "
                     "has one alpha", f"convert_lora_to_gguf.py (adapter.lora.alpha = lora_alpha) ({_S})", MERGED)
TIED_LM_HEAD = Rule("llama.cpp.tied_lm_head", "llama.cpp", "a LoRA on lm_head of a base with tied embeddings is "
                    "refused (\"lm_head is present in adapter, but is ignored in base model\")",
                    f"convert_lora_to_gguf.py LoraModel.modify_tensors ({_S})", MERGED)
INIT = Rule("llama.cpp.init", "llama.cpp", "PiSSA / OLoRA / CorDA / LoftQ adapters are only right on the base they "
            "modified; the converter copies lora_A/lora_B as they are", f"convert_lora_to_gguf.py ({_S})",
            "convert it to a plain LoRA with peft's path_initial_model_for_weight_conversion, or export merged")
TRAINABLE_TOKENS = Rule("llama.cpp.trainable_tokens", "llama.cpp", "trainable tokens are not LoRA tensors",
                        f"convert_lora_to_gguf.py LoraModel.get_tensors ({_S})", MERGED)
ARCHITECTURE = Rule("llama.cpp.architecture", "llama.cpp", "the base's architecture must be one "
                    "convert_hf_to_gguf.py registers (ModelBase.register)",
                    f"convert_hf_to_gguf.py / conversion/*.py, listed in "
                    f"registry/engines/preflight/data/llama_cpp_architectures.txt ({_S})", None)

RULES = (PEFT_TYPE, DORA, FULL_WEIGHTS, RSLORA, ALPHA_PATTERN, TIED_LM_HEAD, INIT, TRAINABLE_TOKENS, ARCHITECTURE)


def architectures() -> frozenset[str]:
    return data_lines("llama_cpp_architectures.txt")


def check(facts: Facts, *, merged: bool = False) -> EngineCheck:
    """Every llama.cpp rule this adapter breaks; `merged`: only those that also stop a merged export."""
    failed: list[tuple[Rule, str]] = []
    if facts.architecture and facts.architecture not in architectures():
        failed.append((ARCHITECTURE, f"{facts.architecture} is not converted by llama.cpp at this version"))
    if merged:
        return verdict(PIN.engine, PIN.version, failed)
    conf = facts.config
    f = facts.fields
    if f is None or not f.is_lora:
        failed.append((PEFT_TYPE, f"a {conf.get('peft_type', 'unknown')} adapter"))
        return verdict(PIN.engine, PIN.version, failed)
    if f.use_dora:
        failed.append((DORA, "use_dora is set"))
    full = list(f.modules_to_save)
    if (f.bias or "none") != "none" or f.lora_bias:
        full.append(f"bias={f.bias!r}" + (" + lora_bias" if f.lora_bias else ""))
    if full:
        failed.append((FULL_WEIGHTS, ", ".join(full)))
    if f.use_rslora:
        failed.append((RSLORA, "use_rslora is set"))
    if f.alpha_pattern:
        failed.append((ALPHA_PATTERN, f"alpha_pattern {dict(f.alpha_pattern)}"))
    if facts.tie_word_embeddings and _targets_lm_head(f.target_modules, facts.tensor_names):
        failed.append((TIED_LM_HEAD, "lm_head is targeted and the base ties it to the embeddings"))
    if f.changes_base:
        failed.append((INIT, f"init_lora_weights={f.init_method}"))
    if f.trainable_token_indices or any("trainable_tokens" in n for n in facts.tensor_names):
        failed.append((TRAINABLE_TOKENS, "trainable_token_indices is set"))
    return verdict(PIN.engine, PIN.version, failed)


def _targets_lm_head(targets, tensors) -> bool:
    return "lm_head" in targets or any(".lm_head.lora_" in n for n in tensors)
