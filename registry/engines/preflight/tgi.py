"""Text Generation Inference's rules for a LoRA adapter, read from TGI v3.3.6 (git tag v3.3.6, efb94e0).

TGI's adapter code is LoRAX's (server/text_generation_server/adapters/lora.py says so), and both
load an adapter the same way, which lorax.py reuses from here: `LoraConfig.load` keeps only r,
target_modules, fan_in_fan_out, lora_alpha and use_rslora; `map_weights_for_model` takes only
`base_model.model.<module>.lora_A.weight` / `.lora_B.weight` of the modules the model has adapter
layers for; every other tensor is logged as "unused adapter weights" and not applied; each module
is scaled by lora_alpha / r (or / sqrt(r) with rsLoRA) with the adapter's one r and one alpha. None
of this refuses an adapter: what it does not read is served wrong, with a warning in the log.
"""

from __future__ import annotations

from registry.engines.versions import TGI, EnginePin

from .rules import EngineCheck, Facts, Rule, targeted_modules, verdict

PIN = TGI
SERVE_MERGED = "serve it merged into its base (adapter-registry merge) instead of as a LoRA"
INIT_FIX = "convert it to a plain LoRA with peft's path_initial_model_for_weight_conversion, or serve merged"

# server/text_generation_server/models/__init__.py get_model_with_lora_adapters: `adapter_layers`.
ADAPTER_LAYERS = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj",
                            "c_proj", "c_fc"})


def make_rules(engine: str, lora_py: str, layers_src: str, tag: str) -> dict[str, Rule]:
    """The rules TGI and LoRAX share, each citing that engine's own files (`tag`: its version)."""
    load = f"{lora_py} LoraConfig.load ({tag})"
    return {
        "peft_type": Rule(f"{engine}.peft_type", engine, "only LoRA adapters are loaded (peft LoraConfig)", load,
                          SERVE_MERGED),
        "target_modules": Rule(f"{engine}.target_modules", engine, "a LoRA on a module with no adapter layer "
                               "(embed_tokens, and lm_head where not listed) is \"unused\" and not applied",
                               f"{layers_src} ({tag})", SERVE_MERGED),
        "partial_layers": Rule(f"{engine}.partial_layers", engine, "layers_to_transform / layers_pattern: a module "
                               "type missing in one layer is dropped in every layer (prepare_weights returns None)",
                               f"{lora_py} LoraWeights ({tag})", SERVE_MERGED),
        "rank_pattern": Rule(f"{engine}.rank_pattern", engine, "rank_pattern / alpha_pattern are not read: those "
                             "modules are scaled by the adapter's one lora_alpha / r", load, SERVE_MERGED),
        "dora": Rule(f"{engine}.dora", engine, "DoRA's lora_magnitude_vector is not read: served as a plain LoRA",
                     f"{lora_py} LoraConfig.map_weights_for_model ({tag})", SERVE_MERGED),
        "full_weights": Rule(f"{engine}.full_weights", engine, "modules_to_save, trainable tokens, bias and lora_bias "
                             "tensors are \"unused adapter weights\", not applied",
                             f"{lora_py} LoraConfig.map_weights_for_model ({tag})", SERVE_MERGED),
        "init": Rule(f"{engine}.init", engine, "PiSSA / OLoRA / CorDA / LoftQ adapters are only right on the base they "
                     "modified; init_lora_weights is not read", load, INIT_FIX),
        "tensor_prefix": Rule(f"{engine}.tensor_prefix", engine, "tensor names must be base_model.model.<module>"
                              ".lora_A.weight for the model's module names, others are not applied",
                              f"{lora_py} LoraConfig.map_weights_for_model ({tag})",
                              "re-save the adapter with peft (save_pretrained) so its tensor names are the model's"),
    }


_R = make_rules("tgi", "server/text_generation_server/adapters/lora.py",
                "server/text_generation_server/models/__init__.py get_model_with_lora_adapters (adapter_layers)",
                f"text-generation-inference v{PIN.version}")
RULES = tuple(_R.values())


def check_family(pin: EnginePin, rules: dict[str, Rule], facts: Facts, layers: frozenset[str] | None) -> EngineCheck:
    """The TGI/LoRAX verdict; `layers`: the modules the base has adapter layers for (None: unknown, not judged)."""
    failed: list[tuple[Rule, str]] = []
    f = facts.fields
    if f is None or not f.is_lora:
        failed.append((rules["peft_type"], f"a {facts.config.get('peft_type', 'unknown')} adapter"))
        return verdict(pin.engine, pin.version, failed)
    if layers is not None:
        unused = sorted(targeted_modules(facts) - layers)
        if unused:
            failed.append((rules["target_modules"], f"no adapter layer for {unused}"))
    if f.layers_to_transform is not None or f.layers_pattern:
        failed.append((rules["partial_layers"], f"layers_to_transform={f.layers_to_transform}"))
    if any(r != f.rank for r in f.rank_pattern.values()) or any(a != f.alpha for a in f.alpha_pattern.values()):
        failed.append((rules["rank_pattern"], f"rank_pattern {dict(f.rank_pattern)}, "
                                              f"alpha_pattern {dict(f.alpha_pattern)}"))
    if f.use_dora:
        failed.append((rules["dora"], "use_dora is set"))
    full = list(f.modules_to_save)
    if f.trainable_token_indices or any("trainable_tokens" in n for n in facts.tensor_names):
        full.append("trainable_token_indices")
    if (f.bias or "none") != "none" or f.lora_bias:
        full.append(f"bias={f.bias!r}" + (" + lora_bias" if f.lora_bias else ""))
    if full:
        failed.append((rules["full_weights"], ", ".join(full)))
    if f.changes_base:
        failed.append((rules["init"], f"init_lora_weights={f.init_method}"))
    odd = sorted({n for n in facts.tensor_names if n.endswith((".lora_A.weight", ".lora_B.weight"))
                  and not n.startswith("base_model.model.")})
    if odd:
        failed.append((rules["tensor_prefix"], f"{len(odd)} tensor(s) not under base_model.model., e.g. {odd[0]}"))
    return verdict(pin.engine, pin.version, failed)


def check(facts: Facts) -> EngineCheck:
    """Every TGI rule this adapter breaks (an empty list: TGI applies it as peft does)."""
    return check_family(PIN, _R, facts, ADAPTER_LAYERS)
