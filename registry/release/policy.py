"""Promotion gates of protected aliases: pure functions over plain facts (no database).

A protected alias carries a policy ("requires a passed verification against its base and
mmlu >= 0.62"). Moving it to a version evaluates every gate; the move is allowed only when all
pass, and the result lists every failing gate, so one refusal names all the reasons at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from registry.errors import InvalidInput
from registry.evals import lower_is_better
from registry.gates import Verdict, describe
from registry.refs import MetricFilter, parse_metric_filter
from registry.release.types import Gate, PolicyResult

SERVING_ENGINES = ("vllm", "llama.cpp")  # registry.engines.versions.INSTALLABLE


@dataclass(frozen=True)
class PolicySpec:
    """The gates of a protected alias."""

    require_verified: bool = False
    require_metrics: tuple[MetricFilter, ...] = ()
    # serving engines the version must also be verified on (its output equal to peft's), e.g. ("vllm",)
    require_verified_engines: tuple[str, ...] = ()

    @classmethod
    def parse(cls, *, require_verified: bool = False, require_metrics: Iterable[str] = (),
              require_verified_engines: Iterable[str] = ()) -> PolicySpec:
        """Build from CLI-style expressions ('mmlu>=0.62'); raises InvalidInput on a bad one.

        `require_verified_engines` names serving engines ("vllm", "llama.cpp"); "peft" is the same
        as require_verified.
        """
        engines: list[str] = []
        for e in require_verified_engines:
            if e == "peft":
                require_verified = True
            elif e not in SERVING_ENGINES:
                raise InvalidInput(f"unknown engine {e!r} for --require-verified: choose from peft, "
                                   f"{', '.join(SERVING_ENGINES)}")
            elif e not in engines:
                engines.append(e)
        filters = tuple(parse_metric_filter(m) for m in require_metrics)
        seen: set[str] = set()
        for f in filters:
            if f.metric in seen:
                raise InvalidInput(f"metric {f.metric!r} is required twice", hint="give each metric one threshold")
            seen.add(f.metric)
        return cls(require_verified, filters, tuple(engines))

    @property
    def expressions(self) -> list[str]:
        return [str(f) for f in self.require_metrics]


@dataclass(frozen=True)
class VersionFacts:
    """What the gates look at, gathered from the catalog by the caller."""

    ref: str
    base: str | None = None  # the base it was registered against, as NAME@REV (None: unknown)
    verified: bool | None = None  # latest verification against that base: passed, failed, or none
    metrics: Mapping[str, float] = field(default_factory=dict)  # current value of each metric
    deprecated: bool = False
    # latest verification on each serving engine against that base: passed, failed, or none (absent)
    engine_verified: Mapping[str, bool | None] = field(default_factory=dict)


def evaluate(alias: str, spec: PolicySpec | None, facts: VersionFacts) -> PolicyResult:
    """Evaluate every gate of `spec` for a version; an unprotected alias (spec None) allows anything."""
    if spec is None:
        return PolicyResult(facts.ref, alias, protected=False, allowed=True)
    gates = []
    if spec.require_verified:
        gates.append(_verified_gate(facts))
    for e in spec.require_verified_engines:
        gates.append(_engine_gate(e, facts))
    for f in spec.require_metrics:
        gates.append(_metric_gate(f, facts.metrics.get(f.metric)))
    # A protected alias never points at a version its owners have retired.
    gates.append(Gate("not_deprecated", "not deprecated", not facts.deprecated,
                      f"{facts.ref} is deprecated" if facts.deprecated else f"{facts.ref} is not deprecated"))
    return PolicyResult(facts.ref, alias, protected=True, allowed=all(g.passed for g in gates), gates=tuple(gates))


def _verified_gate(facts: VersionFacts) -> Gate:
    if facts.base is None:
        return Gate("verified", "verified against its base", False,
                    f"{facts.ref} has no base model recorded, so it cannot have been verified against it")
    detail = describe(facts.ref, facts.base, Verdict(facts.verified))  # the words publish refuses with too
    return Gate("verified", f"verified against {facts.base}", facts.verified is True, detail)


def _engine_gate(engine: str, facts: VersionFacts) -> Gate:
    name = "verified"  # the same kind as peft's gate; the expression names the engine
    if facts.base is None:
        return Gate(name, f"verified on {engine}", False,
                    f"{facts.ref} has no base model recorded, so it cannot have been verified on {engine}")
    v = facts.engine_verified.get(engine)
    detail = describe(facts.ref, facts.base, Verdict(v), engine=engine)
    return Gate(name, f"verified on {engine} against {facts.base}", v is True, detail)


def _metric_gate(f: MetricFilter, value: float | None) -> Gate:
    # A gate compares exactly as written; for a lower-is-better metric (perplexity) it says so, and
    # says when the comparison admits the worse side.
    need = f"{f.op} {f.value:g}"
    if lower_is_better(f.metric):
        need += ", lower is better" + ("; this gate admits higher, worse values" if f.op in (">", ">=") else "")
    if value is None:
        return Gate("metric", str(f), False, f"{f.metric} has no value (needs {need})")
    if not f.holds(value):
        return Gate("metric", str(f), False, f"{f.metric} is {value:g}, needs {need}")
    return Gate("metric", str(f), True, f"{f.metric} is {value:g} ({need})")
