"""Make a running vLLM serve exactly an alias set: `adapter-registry deploy --vllm URL --alias production`.

The registry names what it loads `NAME@ALIAS` and points it at the version's folder; vLLM's
/v1/models lists each loaded LoRA with its `root` (the folder), so a moved alias shows as a
different root. `plan` (pure) compares what should be served with what is, and `apply` loads and
unloads through vLLM's runtime API (/v1/load_lora_adapter, /v1/unload_lora_adapter; the server needs
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True). Only names ending in `@ALIAS` are touched: adapters someone
else loaded stay. A version that is not verified on vLLM against the served base is not loaded
(`require_verified=False` relaxes that), nor one vLLM's preflight rules refuse.

`deploy --follow` (registry/workflows/deploy.py `follow`) reads the events feed and deploys again
after each batch of events `due` says can change what the alias serves; `moves` (pure) folds the
alias events of a batch into what each NAME@ALIAS moved from and to, for its log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.errors import DeployFailed, InvalidInput


@dataclass(frozen=True)
class Plan:
    alias: str
    load: dict[str, str] = field(default_factory=dict)  # served name -> adapter folder
    unload: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)  # NAME@ALIAS -> why it is not served

    def to_dict(self) -> dict:
        return {"alias": self.alias, "load": dict(self.load), "unload": list(self.unload), "keep": list(self.keep),
                "skipped": dict(self.skipped)}


def plan(alias: str, desired: Mapping[str, str], current: Mapping[str, str], *,
         skipped: Mapping[str, str] | None = None) -> Plan:
    """What to load and unload so that the `@alias` names served are exactly `desired` (name -> folder).

    A name served from another folder (the alias moved) is unloaded, then loaded from the new one.
    """
    suffix = f"@{alias}"
    mine = {n: root for n, root in current.items() if n.endswith(suffix)}
    load = {n: p for n, p in sorted(desired.items()) if mine.get(n) != p}
    unload = tuple(sorted(n for n in mine if n not in desired or n in load))
    keep = tuple(sorted(n for n in mine if n in desired and n not in load))
    return Plan(alias, load, unload, keep, dict(skipped or {}))


# Events after which the alias set, or what of it may be served, can differ: the alias moved or was
# removed (release/aliases.py), or one of its versions was deleted, deprecated, undeprecated or
# re-based (serving-profile leaves such versions out or puts them back).
ALIAS_KINDS = ("alias.set", "alias.remove")
# version.verify: a version under the alias may become servable (deploy requires it verified for vLLM)
VERSION_KINDS = ("version.delete", "version.deprecate", "version.undeprecate", "version.set_base", "version.verify")


def due(events: Iterable[Any], alias: str) -> bool:
    """Whether any of these events (EventInfo: kind, subject) can change what `alias` serves."""
    return any((e.kind in ALIAS_KINDS and e.subject.endswith(f"@{alias}")) or e.kind in VERSION_KINDS
               for e in events)


Moves = dict[str, tuple[int | None, int | None]]  # NAME@ALIAS -> (version before, version after)


def moves(events: Iterable[Any], alias: str) -> Moves:
    """{NAME@ALIAS: (version before the first event, version after the last)} for the alias events, oldest first.

    A name moved back to where it started is left out (nothing to load or unload for it).
    """
    out: Moves = {}
    for e in events:
        if e.kind in ALIAS_KINDS and e.subject.endswith(f"@{alias}"):
            start = out[e.subject][0] if e.subject in out else e.payload.get("from")
            out[e.subject] = (start, e.payload.get("to"))
    return {k: v for k, v in out.items() if v[0] != v[1]}


def served(url: str, *, timeout: float = 30) -> tuple[str | None, dict[str, str]]:
    """(the base model vLLM serves, {LoRA name: root folder}) from /v1/models."""
    import httpx

    try:
        r = httpx.get(f"{url.rstrip('/')}/v1/models", timeout=timeout)
        r.raise_for_status()
    except httpx.HTTPError as e:
        raise DeployFailed(f"cannot list the models of the vLLM server at {url}: {e}") from e
    base, loras = None, {}
    try:
        models = r.json().get("data", [])
        for m in models:
            if m.get("parent"):
                loras[m["id"]] = str(m.get("root") or "")
            else:
                base = m.get("root") or m.get("id")
    except (ValueError, AttributeError, TypeError, KeyError) as e:
        raise DeployFailed(f"the vLLM server at {url} answered /v1/models with no model list ({e})") from e
    return base, loras


def apply(url: str, p: Plan, *, timeout: float = 120) -> None:
    """Unload, then load (a moved alias is briefly absent rather than served from the old version)."""
    import httpx

    root = url.rstrip("/")

    def post(what: str, path: str, body: dict[str, str]) -> httpx.Response:
        try:
            return httpx.post(f"{root}{path}", json=body, timeout=timeout)
        except httpx.HTTPError as e:  # vLLM restarting, a load past the timeout: a failed deploy, retried
            raise DeployFailed(f"cannot {what} on the vLLM server at {url}: {type(e).__name__}: {e}") from e

    for name in p.unload:
        r = post(f"unload {name}", "/v1/unload_lora_adapter", {"lora_name": name})
        if r.status_code >= 400:
            raise DeployFailed(f"vLLM refused to unload {name}: {r.status_code} {r.text[:300]}")
    for name, path in p.load.items():
        r = post(f"load {name}", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})
        if r.status_code >= 400:
            raise DeployFailed(f"vLLM refused to load {name} from {path}: {r.status_code} {r.text[:300]}")


def check_alias(alias: str) -> None:
    if not alias or "@" in alias:
        raise InvalidInput(f"invalid alias {alias!r}")
