"""What every engine's preflight module shares: a rule, the facts rules look at, an engine's verdict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from registry import types as T
from registry.adapters.peft_config import PeftFields, parse_config
from registry.errors import InvalidAdapter


@dataclass(frozen=True)
class Rule:
    """One thing an engine refuses or gets wrong, and where in the engine's source it comes from."""

    id: str
    engine: str
    summary: str
    source: str  # file (and function) in the engine's tree at the pinned version
    fix: str | None = None  # what to do instead, e.g. "serve merged"


@dataclass(frozen=True)
class Facts:
    """What the rules look at, gathered by the caller from the catalog or an adapter folder."""

    config: Mapping[str, Any]  # adapter_config.json
    architecture: str | None = None  # the base's architectures[0] (None: unknown, not checked)
    tie_word_embeddings: bool = False
    tensor_names: tuple[str, ...] = ()  # adapter tensor names (empty: unknown, name rules not checked)

    @property
    def fields(self) -> PeftFields | None:
        try:
            return parse_config(dict(self.config))
        except InvalidAdapter:
            return None


EngineCheck = T.EngineSupport  # one engine's answer: ok, or the reasons (each prefixed by its rule id) and a fix


def verdict(engine: str, version: str, failed: Iterable[tuple[Rule, str]]) -> EngineCheck:
    failed = list(failed)
    fixes = [r.fix for r, _ in failed if r.fix]
    return EngineCheck(engine, version, not failed, tuple(f"{r.id}: {why}" for r, why in failed),
                       "; ".join(dict.fromkeys(fixes)) or None)


def failed_rules(check: EngineCheck) -> set[str]:
    """The ids of the rules a check failed (the prefix of each reason)."""
    return {r.split(":", 1)[0] for r in check.reasons}


@cache
def data_lines(name: str) -> frozenset[str]:
    """A data file of this package (one name a line, '#' comments), as a set."""
    from importlib.resources import files

    text = files("registry.engines.preflight").joinpath("data").joinpath(name).read_text()
    return frozenset(ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#"))


def facts_from_folders(adapter_dir: str | Path, base_dir: str | Path | None = None, *,
                       architecture: str | None = None, tie_word_embeddings: bool | None = None) -> Facts:
    """Facts read from an adapter folder (config, safetensors tensor names) and its base's config.json.

    A missing base folder or config leaves the architecture as given (None: not checked).
    """
    import json

    from registry.adapters.safetensors import read_header

    adapter_dir = Path(adapter_dir)
    conf = json.loads((adapter_dir / "adapter_config.json").read_text())
    names: list[str] = []
    for st in sorted(adapter_dir.glob("*.safetensors")):
        names.extend(read_header(st).tensors)
    tied = tie_word_embeddings
    if base_dir is not None and (Path(base_dir) / "config.json").is_file():
        bconf = json.loads((Path(base_dir) / "config.json").read_text())
        archs = bconf.get("architectures") or []
        architecture = architecture or (archs[0] if archs else None)
        if tied is None:
            tied = bool(bconf.get("tie_word_embeddings", False))
    return Facts(conf, architecture=architecture, tie_word_embeddings=bool(tied), tensor_names=tuple(names))


_LORA_TENSOR = (".lora_A.weight", ".lora_B.weight", ".lora_A", ".lora_B", ".lora_embedding_A", ".lora_embedding_B")


def targeted_modules(facts: Facts) -> set[str]:
    """The last name of every module the adapter puts a LoRA on: its tensors' when known, else target_modules.

    A regex target_modules with no tensor names known gives an empty set (nothing is judged).
    """
    names = set()
    for t in facts.tensor_names:
        for suffix in _LORA_TENSOR:
            if t.endswith(suffix):
                names.add(t[: -len(suffix)].rsplit(".", 1)[-1])
                break
    if names:
        return names
    f = facts.fields
    return {t.rsplit(".", 1)[-1] for t in (f.target_modules if f else [])}
