"""Per-engine preflight: would this engine serve (or convert) this adapter, and serve it right?

Pure functions over plain facts (the adapter's config, its tensor names, the base's architecture):
no engine is imported or run. One module per engine (vllm.py, llama_cpp.py, sglang.py, tgi.py,
lorax.py, sharing rules.py); every rule names the engine source file, at the version pinned in
registry/engines/versions.py, that it was read from (docs/ENGINES.md lists them all). `check_all` is
what `show --json` reports as `engines`; `serving-profile` refuses by vllm.py alone and `export` by
llama_cpp.py.
"""

from __future__ import annotations

from typing import Any

from . import llama_cpp, lorax, sglang, tgi, vllm
from .rules import EngineCheck, Facts, Rule, data_lines, facts_from_folders, failed_rules, verdict

__all__ = ["EngineCheck", "Facts", "Rule", "all_rules", "check", "check_all", "data_lines", "engines",
           "facts_from_folders", "failed_rules", "verdict"]


def engines() -> dict[str, Any]:
    """engine name -> its preflight module (each has PIN, RULES and check(facts))."""
    return {m.PIN.engine: m for m in (vllm, llama_cpp, sglang, tgi, lorax)}


def check(engine: str, facts: Facts) -> EngineCheck:
    mod = engines().get(engine)
    if mod is None:
        raise KeyError(engine)
    return mod.check(facts)


def check_all(facts: Facts) -> tuple[EngineCheck, ...]:
    return tuple(m.check(facts) for m in engines().values())


def all_rules() -> list[Rule]:
    return [r for m in engines().values() for r in m.RULES]
