"""Parsing of references: NAME, NAME@VERSION, NAME@ALIAS, NAME@latest; metric expressions."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from registry.adapters.inspect import check_name
from registry.errors import InvalidInput

# Name-like patterns are used with fullmatch: "^...$" with match() admits a trailing newline.
ALIAS_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
METRIC_RE = re.compile(r"[A-Za-z0-9_.:/,@-]{1,200}")
OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "=": operator.eq}
METRIC_EXPR = re.compile(r"[ \t]*([A-Za-z0-9_.:/,@-]+)[ \t]*(>=|<=|==|=|>|<)[ \t]*([-+0-9.eE]+|nan|inf)[ \t]*")
TAG_KEY_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,200}")


@dataclass(frozen=True)
class Ref:
    name: str
    version: int | None = None
    alias: str | None = None  # "latest" is not an alias: version=None, alias=None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_ref(text: str) -> Ref:
    """NAME[@VERSION|@ALIAS|@latest] -> Ref. Raises InvalidName / InvalidInput."""
    name, _, ref = str(text).partition("@")
    check_name(name)
    if not ref or ref == "latest":
        return Ref(name)
    if ref.removeprefix("v").isdigit() and len(ref.removeprefix("v")) > 12:
        raise InvalidInput(f"invalid version {ref!r}: version numbers have at most 12 digits")
    if ref.isdigit():
        return Ref(name, version=int(ref))
    if ref.startswith("v") and ref[1:].isdigit():
        return Ref(name, version=int(ref[1:]))
    return Ref(name, alias=check_alias(ref))


def check_alias(alias: str) -> str:
    if not ALIAS_RE.fullmatch(alias or "") or alias == "latest":
        raise InvalidInput(f"invalid alias {alias!r}", hint="aliases match [a-z][a-z0-9_-]* (not 'latest')")
    return alias


def check_metric_name(metric: str) -> str:
    if not METRIC_RE.fullmatch(metric or ""):
        raise InvalidInput(f"invalid metric name {metric!r}", hint="metric names match [A-Za-z0-9_.:/,@-]+")
    return metric


@dataclass(frozen=True)
class MetricFilter:
    metric: str
    op: str
    value: float

    def holds(self, v: float | None) -> bool:
        return v is not None and OPS[self.op](v, self.value)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_metric_filter(text: str) -> MetricFilter:
    """'mmlu>=0.62' -> MetricFilter."""
    m = METRIC_EXPR.fullmatch(text or "")
    if not m:
        raise InvalidInput(f"invalid metric filter {text!r}", hint="write NAME>=X (also <=, >, <, ==)")
    value = float(m.group(3))
    if value != value:
        raise InvalidInput(f"invalid metric filter {text!r}: NaN threshold")
    return MetricFilter(m.group(1), "==" if m.group(2) == "=" else m.group(2), value)


def parse_metric_value(text: str) -> tuple[str, float]:
    """'acc=0.61' -> ('acc', 0.61)."""
    name, sep, raw = (text or "").partition("=")
    if not sep:
        raise InvalidInput(f"invalid metric {text!r}", hint="write --metric NAME=VALUE")
    try:
        value = float(raw)
    except ValueError as e:
        raise InvalidInput(f"metric {name!r} has a non-numeric value {raw!r}") from e
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidInput(f"metric {name!r} must be finite, got {raw!r}")
    return check_metric_name(name.strip()), value


def parse_tag(text: str) -> tuple[str, str]:
    k, sep, v = (text or "").partition("=")
    if not sep or not TAG_KEY_RE.fullmatch(k):
        raise InvalidInput(f"invalid tag {text!r}", hint="write --tag KEY=VALUE")
    if len(v) > 500:
        raise InvalidInput(f"tag {k!r} value is longer than 500 characters")
    return k, v
