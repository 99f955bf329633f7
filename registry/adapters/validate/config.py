"""adapter_config.json against what peft would understand, over bytes, before peft_config parses it.

Python's json is more lenient than JSON (NaN and Infinity tokens, duplicate keys where the last
one wins silently) and raises RecursionError on deep nesting; peft then fills in defaults for
what is missing (`lora_alpha`) and casts what has the wrong type. Each of those is refused here.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from registry.adapters.peft_config import ALPHA_KEYS
from registry.adapters.validate import Finding, strictjson

FILE = "adapter_config.json"
MAX_BYTES = 16 * 1024 * 1024  # push reads at most peft_config.MAX_CONFIG_BYTES of it (inspect passes that)
# peft 0.21's PeftType values (tests/validation checks this against peft.PeftType)
PEFT_TYPES = frozenset({
    "ADALORA", "ADAMSS", "ADAPTION_PROMPT", "BEFT", "BOFT", "C3A", "CARTRIDGE", "CPT", "DEFT", "DELORA",
    "FOURIERFT", "FROD", "GLORA", "GRALORA", "HIRA", "HRA", "IA3", "LILY", "LN_TUNING", "LOHA", "LOKR", "LORA",
    "MISS", "MULTITASK_PROMPT_TUNING", "OFT", "OSF", "PEANUT", "POLY", "PREFIX_TUNING", "PROMPT_TUNING", "PSOFT",
    "PVERA", "P_TUNING", "RANDLORA", "ROAD", "SHADOW", "SHIRA", "SUPERTUNING", "TINYLORA", "TRAINABLE_TOKENS",
    "UNILORA", "VBLORA", "VERA", "WAVEFT", "XLORA",
})
# the scale field of each type that has one, and peft's silent default for it
ALPHA_FIELD = {t: f for t, f in ALPHA_KEYS.items() if f}
RANKED = {"LORA", "ADALORA", "LOHA", "LOKR", "VERA"}
# LoraConfig.init_lora_weights besides true/false (peft 0.21, tuners/lora/config.py; its layer raises
# "Unknown initialization" on anything else, and fails on a non-string)
LORA_INITS = frozenset({"gaussian", "eva", "olora", "pissa", "corda", "loftq", "orthogonal", "mica"})
BOOL_FIELDS = ("use_dora", "use_rslora", "fan_in_fan_out", "lora_bias", "inference_mode")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_str_list(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) for v in x)


def parse(data: bytes, *, file: str = FILE) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The config as a dict when it is strict JSON and an object, else the finding why not."""
    def bad(code: str, msg: str, fld: str | None = None) -> tuple[None, list[Finding]]:
        return None, [Finding(code, f"{file}: {msg}", file=file, field=fld)]

    if len(data) > MAX_BYTES:
        return bad("CONFIG_JSON", f"{len(data)} bytes, more than {MAX_BYTES} for a config")
    try:
        parsed = strictjson.loads(data.decode("utf-8"))
    except RecursionError:
        return bad("CONFIG_TOO_DEEP", "nested too deep to parse")
    except (UnicodeDecodeError, ValueError) as e:
        return bad("CONFIG_JSON", f"not valid JSON ({e.__class__.__name__})")
    if parsed.duplicate is not None:
        return bad("CONFIG_DUPLICATE_KEY", f"key {parsed.duplicate!r} is given twice (the last one would win "
                   "silently)", parsed.duplicate)
    if parsed.constant is not None:
        return bad("CONFIG_NONSTANDARD_JSON", f"{parsed.constant} is not JSON (Python's json accepts it, peft "
                   "would use it)")
    conf = parsed.doc
    if not isinstance(conf, dict):
        return bad("CONFIG_NOT_OBJECT", f"not a JSON object but {type(conf).__name__}")
    return conf, []


def check_config(conf: dict[str, Any], *, file: str = FILE) -> list[Finding]:
    """Every field peft would misread or silently default (a parsed config)."""
    out: list[Finding] = []

    def add(code: str, fld: str, msg: str) -> None:
        out.append(Finding(code, f"{file}: {fld} {msg}", file=file, field=fld))

    pt = conf.get("peft_type")
    if pt is None:
        add("CONFIG_PEFT_TYPE_MISSING", "peft_type", "is missing: not a PEFT adapter config")
        return out
    if not isinstance(pt, str) or pt.upper() not in PEFT_TYPES:
        add("CONFIG_PEFT_TYPE_UNKNOWN", "peft_type", f"{pt!r} is not a type peft defines")
        return out
    pt = pt.upper()
    if "r" in conf or pt in RANKED:
        r = conf.get("r")
        if not _is_int(r):
            add("CONFIG_RANK_TYPE", "r", f"must be an integer, not {type(r).__name__} {r!r}")
        elif isinstance(r, int) and r <= 0:
            add("CONFIG_RANK_RANGE", "r", f"must be positive, got {r}")
    af = ALPHA_FIELD.get(pt)
    if af is not None:
        if af not in conf:
            add("CONFIG_ALPHA_MISSING", af, "is missing (peft would silently use its default, changing the scale)")
        else:
            a = conf[af]
            if not _is_num(a):
                add("CONFIG_ALPHA_TYPE", af, f"must be a number, not {type(a).__name__} {a!r}")
            elif not math.isfinite(a) or a < 0:
                add("CONFIG_ALPHA_RANGE", af, f"must be a finite number >= 0, got {a}")
    for pf, want_int in (("rank_pattern", True), ("alpha_pattern", False)):
        if pf not in conf:
            continue
        v = conf[pf]  # null is no pattern to peft either: it calls .keys() on it
        if pt == "ADALORA" and pf == "rank_pattern":
            # AdaLoRA's is its allocator's mask per module (a list of booleans), null before allocation
            if v is not None and not (isinstance(v, dict) and all(
                    isinstance(m, list) and all(isinstance(x, bool) for x in m) for m in v.values())):
                add("CONFIG_PATTERN_TYPE", pf, "must map module names to lists of booleans (AdaLoRA's rank mask)")
            continue
        ok = isinstance(v, dict) and all((_is_int(x) and x > 0) if want_int else (_is_num(x) and x >= 0)
                                         for x in v.values())
        if not ok:
            add("CONFIG_PATTERN_TYPE", pf, "must map module names to " + ("positive integers" if want_int
                                                                           else "numbers >= 0"))
    tm = conf.get("target_modules")
    if tm is not None and not isinstance(tm, str) and not _is_str_list(tm):
        add("CONFIG_TARGET_MODULES_TYPE", "target_modules", f"must be a list of names or a regex string, not "
            f"{type(tm).__name__}")
    em = conf.get("exclude_modules")
    if em is not None and not isinstance(em, str) and not _is_str_list(em):
        add("CONFIG_FIELD_TYPE", "exclude_modules", "must be a list of names or a regex string")
    for bf in BOOL_FIELDS:
        if bf in conf and conf[bf] is not None and not isinstance(conf[bf], bool):
            add("CONFIG_FIELD_TYPE", bf, f"must be true or false, not {conf[bf]!r}")
    ilw = conf.get("init_lora_weights", True)
    if pt == "LORA" and not (isinstance(ilw, bool) or (isinstance(ilw, str) and (
            ilw.lower() in LORA_INITS or re.fullmatch(r"pissa_niter_\d+", ilw.lower())))):
        add("CONFIG_FIELD_TYPE", "init_lora_weights", f"must be true, false or one of peft's initialisations "
            f"({', '.join(sorted(LORA_INITS))}, pissa_niter_N), not {ilw!r}")
    mts = conf.get("modules_to_save")
    if mts is not None and not _is_str_list(mts):
        add("CONFIG_FIELD_TYPE", "modules_to_save", "must be a list of module names")
    ltt = conf.get("layers_to_transform")
    if ltt is not None and not _is_int(ltt) and not (isinstance(ltt, list) and all(_is_int(x) and x >= 0
                                                                                 for x in ltt)):
        add("CONFIG_FIELD_TYPE", "layers_to_transform", "must be a layer index or a list of them")
    lp = conf.get("layers_pattern")
    if lp is not None and not isinstance(lp, str) and not _is_str_list(lp):
        add("CONFIG_FIELD_TYPE", "layers_pattern", "must be a name or a list of names")
    bias = conf.get("bias")
    if bias is not None and bias not in ("none", "all", "lora_only"):
        add("CONFIG_FIELD_TYPE", "bias", f"must be 'none', 'all' or 'lora_only', not {bias!r}")
    tt = conf.get("trainable_token_indices")
    if tt is not None and not (isinstance(tt, list) and all(_is_int(x) and x >= 0 for x in tt)) and not (
            isinstance(tt, dict) and all(isinstance(k, str) and isinstance(v, list)
                                         and all(_is_int(x) and x >= 0 for x in v) for k, v in tt.items())):
        add("CONFIG_FIELD_TYPE", "trainable_token_indices", "must be a list of token ids or a map of them")
    for k, v in conf.items():  # loftq_config, corda_config, eva_config, ...: peft builds a dataclass from each
        if k.endswith("_config") and v is not None and not isinstance(v, dict):
            add("CONFIG_FIELD_TYPE", k, f"must be an object or null, not {type(v).__name__}")
    tt_task = conf.get("task_type")
    if tt_task is not None and not isinstance(tt_task, str):
        add("CONFIG_FIELD_TYPE", "task_type", "must be a string")
    hint = conf.get("base_model_name_or_path")
    if hint is not None:
        if not isinstance(hint, str):
            add("CONFIG_BASE_PATH", "base_model_name_or_path", f"must be a string, not {type(hint).__name__}")
        elif ".." in PurePosixPath(hint).parts or ".." in PureWindowsPath(hint).parts or "\0" in hint:
            add("CONFIG_BASE_PATH", "base_model_name_or_path", f"{hint!r} has '..' components")
    return out
