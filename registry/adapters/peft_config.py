"""adapter_config.json as typed fields (pure; no peft import)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.adapters import patterns
from registry.errors import InvalidAdapter

LORA_FAMILY = {"LORA"}
# Initialisations that move the base weights themselves: the adapter is only right on the base
# *as modified at init time*, so merging it into the original base is wrong.
BASE_CHANGING_INITS = {"pissa", "olora", "corda", "loftq"}
# Where each PEFT type keeps its scaling alpha (peft 0.21's configs); a type not named uses lora_alpha.
# FROD's regularization_alpha is a loss weight, not a scaling, so FROD has none.
ALPHA_KEYS = {
    "LORA": "lora_alpha", "ADALORA": "lora_alpha", "SUPERTUNING": "lora_alpha", "LOHA": "alpha", "LOKR": "alpha",
    "DEFT": "alpha", "GRALORA": "alpha", "PSOFT": "psoft_alpha", "RANDLORA": "randlora_alpha",
    "SHADOW": "shadow_alpha", "FROD": "",
}
MAX_CONFIG_BYTES = 16 * 1024 * 1024  # adapter_config.json (a rank_pattern naming every module of a 405B is ~100 KB)


@dataclass(frozen=True)
class PeftFields:
    peft_type: str
    task_type: str | None
    base_model_hint: str | None
    rank: int | None
    alpha: float | None
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    target_modules: list[str] = field(default_factory=list)
    target_regex: str | None = None
    exclude_modules: list[str] | str | None = None
    layers_to_transform: list[int] | None = None
    layers_pattern: list[str] | str | None = None
    use_dora: bool = False
    use_rslora: bool = False
    modules_to_save: list[str] = field(default_factory=list)
    bias: str | None = None
    lora_bias: bool = False
    fan_in_fan_out: bool = False
    init_method: str | None = None
    trainable_token_indices: Any = None
    target_parameters: list[str] | None = None
    layer_replication: Any = None
    # AdaLoRA: the rank its allocator left each module (peft's rank_pattern there is a mask per
    # module, not a rank; the saved tensors are cut to it): sum of each mask
    allocated_ranks: dict[str, int] = field(default_factory=dict)

    @property
    def is_lora(self) -> bool:
        return self.peft_type in LORA_FAMILY

    @property
    def changes_base(self) -> bool:
        return (self.init_method or "").split("_")[0] in BASE_CHANGING_INITS

    @property
    def rank_range(self) -> tuple[int | None, int | None]:
        """(smallest, largest) rank any module has: `r` with the values of `rank_pattern` (what
        `--min-rank` / `--max-rank` compare with; migration 0004 computes the same for old rows)."""
        if self.allocated_ranks:  # AdaLoRA after allocation: every module's rank is known
            ranks = list(self.allocated_ranks.values())
        else:
            ranks = ([self.rank] if self.rank is not None else []) + list(self.rank_pattern.values())
        return (min(ranks), max(ranks)) if ranks else (None, None)

    def scaling_for(self, module: str) -> tuple[int | None, float | None]:
        """(r, alpha) for a module name, resolved the way peft's get_pattern_key does."""
        r = pattern_value(self.rank_pattern, module, self.rank, field="rank_pattern")
        a = pattern_value(self.alpha_pattern, module, self.alpha, field="alpha_pattern")
        return r, a


def pattern_key(pattern_keys: Iterable[str], name: str, *, field: str = "rank_pattern") -> str:
    """peft's `utils.other.get_pattern_key`: which rank_pattern / alpha_pattern key applies to a module.

    The first key, in dict order, that matches a dot-separated suffix of `name` to its end (keys
    are regexes, evaluated in linear time by registry.adapters.patterns), else `name` itself. The
    static check and the merge both resolve ranks and alphas through this one function, so they
    cannot disagree.
    """
    return patterns.pattern_key(pattern_keys, name, field=field)


def pattern_value(pattern_dict: Mapping[str, Any], name: str, default: Any, *, field: str = "rank_pattern") -> Any:
    """The value peft's LoRA layer takes from a pattern dict: `patterns.get(pattern_key(...), default)`."""
    return pattern_dict.get(pattern_key(pattern_dict.keys(), name, field=field), default)


def init_method(conf: dict[str, Any]) -> str | None:
    v = conf.get("init_lora_weights", True)
    if conf.get("loftq_config"):
        return "loftq"
    if conf.get("corda_config") and str(v).lower() == "corda":
        return "corda"
    if v is True:
        return "default"
    if v is False:
        return "random"
    return str(v).lower()


def parse_config(conf: dict[str, Any]) -> PeftFields:
    """Typed fields from a parsed adapter_config.json. Raises InvalidAdapter on a bad config."""
    if not isinstance(conf, dict) or "peft_type" not in conf:
        raise InvalidAdapter("adapter_config.json has no peft_type: not a PEFT adapter config")
    peft_type = str(conf["peft_type"]).upper()
    tm = conf.get("target_modules")
    target_regex = tm if isinstance(tm, str) else None
    targets = sorted(tm) if isinstance(tm, (list, tuple, set)) else ([] if tm is None else [tm])
    mts = conf.get("modules_to_save") or []
    r = conf.get("r")
    alpha_key = ALPHA_KEYS.get(peft_type, "lora_alpha")
    alpha = conf.get(alpha_key) if alpha_key else None
    adalora = peft_type == "ADALORA"
    if adalora:  # its layers are built with init_r (r is LoraConfig's unused default)
        r = conf.get("init_r", r)
    try:
        rank = int(r) if r is not None else None
        alpha_f = float(alpha) if alpha is not None else None
        allocated = ({str(k): sum(1 for x in v if x) for k, v in (conf.get("rank_pattern") or {}).items()}
                     if adalora else {})
        rank_pattern = {} if adalora else {str(k): int(v) for k, v in (conf.get("rank_pattern") or {}).items()}
        alpha_pattern = {str(k): float(v) for k, v in (conf.get("alpha_pattern") or {}).items()}
    except (TypeError, ValueError) as e:
        raise InvalidAdapter(f"adapter_config.json: r / {alpha_key or 'alpha'} / patterns must be numbers ({e})") from e
    if rank is not None and rank <= 0:
        raise InvalidAdapter(f"adapter_config.json: r must be positive, got {rank}")
    ltt = conf.get("layers_to_transform")
    check_patterns(conf, rank_pattern, alpha_pattern)
    return PeftFields(
        peft_type=peft_type,
        task_type=conf.get("task_type"),
        base_model_hint=conf.get("base_model_name_or_path"),
        rank=rank,
        alpha=alpha_f,
        rank_pattern=rank_pattern,
        alpha_pattern=alpha_pattern,
        target_modules=[str(t) for t in targets],
        target_regex=target_regex,
        exclude_modules=conf.get("exclude_modules"),
        layers_to_transform=[ltt] if isinstance(ltt, int) else ltt,
        layers_pattern=conf.get("layers_pattern"),
        use_dora=bool(conf.get("use_dora", False)),
        use_rslora=bool(conf.get("use_rslora", False)),
        modules_to_save=[str(m) for m in mts],
        bias=conf.get("bias"),
        lora_bias=bool(conf.get("lora_bias", False)),
        fan_in_fan_out=bool(conf.get("fan_in_fan_out", False)),
        init_method=init_method(conf) if peft_type in LORA_FAMILY else None,
        trainable_token_indices=conf.get("trainable_token_indices"),
        target_parameters=conf.get("target_parameters"),
        layer_replication=conf.get("layer_replication"),
        allocated_ranks=allocated,
    )


def check_patterns(conf: dict[str, Any], rank_pattern: Mapping[str, Any], alpha_pattern: Mapping[str, Any]) -> None:
    """Every regex of the config compiles for the linear-time engine, each built as peft builds it.

    Raises:
        InvalidInput: naming the field and the key (an invalid regex, a construct RE2 lacks, too many keys)
    """
    patterns.check_pattern_keys(rank_pattern, field="rank_pattern")
    patterns.check_pattern_keys(alpha_pattern, field="alpha_pattern")
    for fld in ("target_modules", "exclude_modules"):
        v = conf.get(fld)
        if isinstance(v, str):
            patterns.compile_pattern(v, what=f"{fld} {v!r}")
    lp = conf.get("layers_pattern")
    for pat in [lp] if isinstance(lp, str) else (lp or []):
        patterns.compile_pattern(patterns.layers_pattern(str(pat)), what=f"layers_pattern {pat!r}")
    mts = conf.get("modules_to_save") or []
    if len(mts) > patterns.MAX_REGEX_KEYS:
        raise InvalidAdapter(f"modules_to_save has {len(mts)} entries; the registry accepts at most "
                             f"{patterns.MAX_REGEX_KEYS}")
    for m in mts:
        patterns.compile_pattern(patterns.module_to_save_pattern(str(m)), what=f"modules_to_save entry {m!r}")


def load_config(path: Path) -> tuple[dict[str, Any], PeftFields]:
    try:
        size = Path(path).stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise InvalidAdapter(f"{Path(path).name} is {size} bytes; the registry reads at most {MAX_CONFIG_BYTES}")
        conf = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise InvalidAdapter(f"missing {Path(path).name} in {Path(path).parent}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidAdapter(f"{Path(path).name} is not valid JSON ({e})") from e
    except RecursionError:
        raise InvalidAdapter(f"{Path(path).name} is nested too deeply to be an adapter config") from None
    return conf, parse_config(conf)
