"""LoRAX's rules for a LoRA adapter, read from LoRAX v0.12.1 (git tag v0.12.1, c0e5798).

LoRAX loads adapters as TGI does (TGI's adapter code came from here; the shared rules are built by
tgi.make_rules and judged by tgi.check_family, each citing LoRAX's own files). What differs is which
modules have adapter layers: each model file lists its own `ADAPTER_LAYERS` (Llama, Mistral and
Qwen2 include lm_head, Gemma does not), for the model types server/lorax_server/models/__init__.py
get_model maps to them; other architectures are not judged on targets.
"""

from __future__ import annotations

from registry.engines.versions import LORAX

from .rules import EngineCheck, Facts
from .tgi import check_family, make_rules

PIN = LORAX

_LLAMA = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"})
# server/lorax_server/models/flash_<model>.py ADAPTER_LAYERS (last module names), by HF architecture.
ADAPTER_LAYERS: dict[str, frozenset[str]] = {
    "LlamaForCausalLM": _LLAMA,  # flash_llama.py
    "MistralForCausalLM": _LLAMA,  # flash_mistral.py
    "Qwen2ForCausalLM": _LLAMA,  # flash_qwen2.py
    "GemmaForCausalLM": _LLAMA - {"lm_head"},  # flash_gemma.py
    "Gemma2ForCausalLM": _LLAMA - {"lm_head"},  # flash_gemma2.py
    "GPT2LMHeadModel": frozenset({"c_attn", "c_proj", "c_fc"}),  # flash_gpt2.py
}

_R = make_rules("lorax", "server/lorax_server/adapters/lora.py",
                "server/lorax_server/models/flash_llama.py, flash_mistral.py, flash_qwen2.py, flash_gemma.py, "
                "flash_gemma2.py, flash_gpt2.py ADAPTER_LAYERS; server/lorax_server/models/model.py "
                "load_adapter (unused adapter weights)", f"lorax v{PIN.version}")
RULES = tuple(_R.values())


def check(facts: Facts) -> EngineCheck:
    """Every LoRAX rule this adapter breaks (an empty list: LoRAX applies it as peft does)."""
    return check_family(PIN, _R, facts, ADAPTER_LAYERS.get(facts.architecture or ""))
