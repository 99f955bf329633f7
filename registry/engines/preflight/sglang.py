"""SGLang's rules for a LoRA adapter, read from sglang 0.5.3 (the PyPI wheel sglang-0.5.3-py3-none-any.whl).

SGLang reads only `r`, `lora_alpha` and `target_modules` of adapter_config.json
(sglang/srt/lora/lora_config.py `LoRAConfig`) and scales every module by lora_alpha / r
(sglang/srt/lora/lora.py `LoRAAdapter`). Per-layer tensors (names with `layers.N.`) are copied into
a memory pool sized by `r` for the stacked modules qkv_proj / gate_up_proj / o_proj / down_proj
(sglang/srt/lora/mem_pool.py `load_lora_weight_to_buffer`); every other tensor is kept aside and
never used. So what it does not read is served wrong, silently, and what does not fit the pool
stops the load.
"""

from __future__ import annotations

from registry.engines.versions import SGLANG

from .rules import EngineCheck, Facts, Rule, targeted_modules, verdict

PIN = SGLANG
_S = f"sglang {PIN.version}"
SERVE_MERGED = "serve it merged into its base (adapter-registry merge) instead of as a LoRA"

# sglang/srt/utils/common.py SUPPORTED_LORA_TARGET_MODULES (the --lora-target-modules choices).
SUPPORTED_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj",
                            "gate_up_proj")

PEFT_TYPE = Rule("sglang.peft_type", "sglang", "only LoRA adapters are loaded (assert peft_type == \"lora\")",
                 f"sglang/srt/lora/lora.py LoRAAdapter.__init__ ({_S})", SERVE_MERGED)
EMBEDDINGS = Rule("sglang.embeddings", "sglang", "a LoRA on embed_tokens or lm_head is refused (\"Not supported yet\")",
                  f"sglang/srt/lora/lora_config.py LoRAConfig.__init__ ({_S})", SERVE_MERGED)
TARGET_MODULES = Rule("sglang.target_modules", "sglang", "LoRA only on " + ", ".join(SUPPORTED_TARGET_MODULES)
                      + " (the --lora-target-modules choices; the memory pool has no shape for others)",
                      f"sglang/srt/utils/common.py SUPPORTED_LORA_TARGET_MODULES; sglang/srt/lora/utils.py "
                      f"get_hidden_dim ({_S})", SERVE_MERGED)
TARGET_REGEX = Rule("sglang.target_regex", "sglang", "a regex target_modules is refused unless the server is started "
                    "with --lora-target-modules (\"only supports inferring LoRA target modules when a list of "
                    "suffixes is provided\")", f"sglang/srt/lora/lora_manager.py LoRAManager.init_lora_shapes ({_S})",
                    "start sglang with --lora-target-modules all, or re-save the adapter with a list of modules")
RSLORA = Rule("sglang.rslora", "sglang", "rsLoRA is served mis-scaled: use_rslora is not read, every module is "
              "scaled by lora_alpha / r", f"sglang/srt/lora/lora.py LoRAAdapter.__init__ (scaling); "
              f"sglang/srt/lora/lora_config.py LoRAConfig ({_S})", SERVE_MERGED)
ALPHA_PATTERN = Rule("sglang.alpha_pattern", "sglang", "alpha_pattern is not read: those modules are served "
                     "mis-scaled (lora_alpha / r)", f"sglang/srt/lora/lora_config.py LoRAConfig; "
                     f"sglang/srt/lora/lora.py LoRAAdapter.__init__ ({_S})", SERVE_MERGED)
RANK_PATTERN = Rule("sglang.rank_pattern", "sglang", "rank_pattern is not read: a module whose rank is not r does not "
                    "fit the pool buffer sized by r (\"LoRA buffer shape ... does not match weight shape\")",
                    f"sglang/srt/lora/mem_pool.py LoRAMemoryPool.load_lora_weight_to_buffer ({_S})", SERVE_MERGED)
DORA = Rule("sglang.dora", "sglang", "DoRA is not supported: use_dora is not read and lora_magnitude_vector is no "
            "lora_A / lora_B buffer", f"sglang/srt/lora/lora_config.py LoRAConfig; sglang/srt/lora/mem_pool.py "
            f"LoRAMemoryPool.load_lora_weight_to_buffer ({_S})", SERVE_MERGED)
BIAS = Rule("sglang.bias", "sglang", "bias / lora_bias tensors are not LoRA A or B: the pool has no buffer for them",
            f"sglang/srt/lora/mem_pool.py LoRAMemoryPool.load_lora_weight_to_buffer ({_S})", SERVE_MERGED)
FULL_WEIGHTS = Rule("sglang.full_weights", "sglang", "modules_to_save and trainable tokens are dropped silently: "
                    "tensors outside layers.N are kept in LoRAAdapter.weights and never used",
                    f"sglang/srt/lora/lora.py LoRAAdapter.initialize_weights ({_S})", SERVE_MERGED)
INIT = Rule("sglang.init", "sglang", "PiSSA / OLoRA / CorDA / LoftQ adapters are only right on the base they "
            "modified; init_lora_weights is not read", f"sglang/srt/lora/lora_config.py LoRAConfig ({_S})",
            "convert it to a plain LoRA with peft's path_initial_model_for_weight_conversion, or serve merged")

RULES = (PEFT_TYPE, EMBEDDINGS, TARGET_MODULES, TARGET_REGEX, RSLORA, ALPHA_PATTERN, RANK_PATTERN, DORA, BIAS,
         FULL_WEIGHTS, INIT)


def check(facts: Facts) -> EngineCheck:
    """Every SGLang rule this adapter breaks (an empty list: SGLang serves it as peft does)."""
    failed: list[tuple[Rule, str]] = []
    f = facts.fields
    if f is None or not f.is_lora:
        failed.append((PEFT_TYPE, f"a {facts.config.get('peft_type', 'unknown')} adapter"))
        return verdict(PIN.engine, PIN.version, failed)
    mods = targeted_modules(facts)
    emb = sorted(mods & {"embed_tokens", "lm_head"})
    if emb:
        failed.append((EMBEDDINGS, f"target_modules {emb}"))
    other = sorted(mods - set(SUPPORTED_TARGET_MODULES) - {"embed_tokens", "lm_head"})
    if other:
        failed.append((TARGET_MODULES, f"target_modules {other}"))
    if f.target_regex:
        failed.append((TARGET_REGEX, f"target_modules is the regex {f.target_regex!r}"))
    if f.use_rslora:
        failed.append((RSLORA, "use_rslora is set"))
    if any(a != f.alpha for a in f.alpha_pattern.values()):
        failed.append((ALPHA_PATTERN, f"alpha_pattern {dict(f.alpha_pattern)}"))
    if any(r != f.rank for r in f.rank_pattern.values()):
        failed.append((RANK_PATTERN, f"rank_pattern {dict(f.rank_pattern)}"))
    if f.use_dora:
        failed.append((DORA, "use_dora is set"))
    if (f.bias or "none") != "none" or f.lora_bias:
        failed.append((BIAS, f"bias={f.bias!r}" + (" + lora_bias" if f.lora_bias else "")))
    full = list(f.modules_to_save)
    if f.trainable_token_indices or any("trainable_tokens" in n for n in facts.tensor_names):
        full.append("trainable_token_indices")
    if full:
        failed.append((FULL_WEIGHTS, ", ".join(full)))
    if f.changes_base:
        failed.append((INIT, f"init_lora_weights={f.init_method}"))
    return verdict(PIN.engine, PIN.version, failed)
