"""Bulk operations over the versions a search query matches, inside one write transaction.

All or nothing: every function runs in the caller's transaction and raises on the first item it
cannot handle (promote collects every policy refusal first, so one error names them all), so
the transaction rolls back and nothing changes.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import commands as C
from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.errors import InvalidInput, PolicyViolation
from registry.gates import latest_verdicts
from registry.refs import parse_metric_filter, parse_tag
from registry.release import aliases as A
from registry.release import deprecate as D
from registry.release import types as RT
from registry.release.impact import enqueue_verify

V = M.AdapterVersion
QUERY_KEYS = ("base", "name", "min_rank", "max_rank", "peft_type", "target_modules", "tags", "metrics",
              "use_dora", "include_deprecated")
PAGE = 1000


def search_query(query: Mapping[str, Any]) -> Q.SearchQuery:
    """A SearchQuery from the keyword filters of Registry.search (tags and metrics as 'k=v' / 'm>=x')."""
    unknown = set(query) - set(QUERY_KEYS)
    if unknown:
        raise InvalidInput(f"unknown bulk query field(s): {', '.join(sorted(unknown))}",
                           hint=f"use {', '.join(QUERY_KEYS)}")
    q = dict(query)
    tags = q.pop("tags", None) or {}
    tags = dict(tags) if isinstance(tags, Mapping) else dict(parse_tag(t) for t in tags)
    metrics = tuple(parse_metric_filter(m) for m in (q.pop("metrics", None) or ()))
    modules = tuple(q.pop("target_modules", None) or ())
    return Q.SearchQuery(**q, tags=tags, metrics=metrics, target_modules=modules, limit=PAGE)


def matching(s: Session, query: Mapping[str, Any]) -> list[tuple[str, V]]:
    """(adapter name, version row) for every version the query matches, in search order.

    Pages through search inside the caller's transaction. Its order is newest first, so a version
    created meanwhile (PostgreSQL) shifts later pages and shows up twice, never missing: duplicates
    are dropped here.
    """
    sq = search_query(query)
    found: list[tuple[str, int]] = []
    offset = 0
    while True:
        page = Q.search(s, dataclasses.replace(sq, offset=offset))
        found += [(v.name, v.version) for v in page.items]
        if len(page.items) < PAGE:
            break
        offset += PAGE
    if not found:
        return []
    names = {n for n, _ in found}
    q = (select(V, M.Adapter.name).join(M.Adapter, M.Adapter.id == V.adapter_id)
         .where(M.Adapter.name.in_(names), V.version.in_({v for _, v in found})))
    rows = {(n, r.version): r for r, n in s.execute(q)}
    seen, out = set(), []
    for key in found:
        if key not in seen and key in rows:
            seen.add(key)
            out.append((key[0], rows[key]))
    return out


def tag(s: Session, items: list[tuple[str, V]], *, tags: Mapping[str, str], remove: Iterable[str],
        actor: str) -> list[RT.BulkItem]:
    remove = list(remove)
    if not tags and not remove:
        raise InvalidInput("nothing to do: give tags to set or keys to remove")
    out = []
    for name, row in items:
        have = dict(s.execute(select(M.Tag.key, M.Tag.value).where(M.Tag.version_id == row.id)).all())
        changes = {k: v for k, v in tags.items() if have.get(k) != v}
        gone = [k for k in remove if k in have]
        for k, v in changes.items():
            t = s.get(M.Tag, (row.id, k))
            if t is None:
                s.add(M.Tag(version_id=row.id, key=k, value=v))
            else:
                t.value = v
        for k in gone:
            s.delete(s.get(M.Tag, (row.id, k)))
        ref = f"{name}@{row.version}"
        if changes or gone:
            C.record(s, actor, "version.tag", ref, {"set": changes, "removed": gone, "bulk": True})
            out.append(RT.BulkItem(ref, "tagged", ", ".join([f"{k}={v}" for k, v in changes.items()]
                                                            + [f"-{k}" for k in gone])))
        else:
            out.append(RT.BulkItem(ref, "unchanged"))
    s.flush()
    return out


def deprecate(s: Session, items: list[tuple[str, V]], *, reason: str | None, actor: str) -> list[RT.BulkItem]:
    out = []
    for name, row in items:
        ref = f"{name}@{row.version}"
        if row.deprecated:
            out.append(RT.BulkItem(ref, "unchanged", "already deprecated"))
            continue
        D.deprecate(s, ref, successor=None, reason=reason, actor=actor)
        out.append(RT.BulkItem(ref, "deprecated", reason or ""))
    return out


def reverify(s: Session, items: list[tuple[str, V]], *, base: str | None, actor: str) -> tuple[list, list]:
    target = Q.get_base(s, base) if base else None
    out, jobs = [], []
    for name, row in items:
        ref = f"{name}@{row.version}"
        b = target or row.base_model
        if b is None:
            out.append(RT.BulkItem(ref, "skipped", "no base model recorded; pass a base"))
            continue
        jobs.append(enqueue_verify(s, ref=ref, base=b, digest=row.content_digest, actor=actor))
        out.append(RT.BulkItem(ref, "enqueued", f"verify against {convert.base_label(b)} (job {jobs[-1]})"))
    return out, jobs


def promote(s: Session, items: list[tuple[str, V]], *, alias: str, select_: str, reason: str | None,
            force: bool, actor: str) -> list[RT.BulkItem]:
    """Move `alias` of every matched adapter to its newest matched version ('latest') or newest
    matched version whose latest verification against its own base passed ('latest-verified')."""
    if select_ not in ("latest", "latest-verified"):
        raise InvalidInput(f"invalid selection {select_!r}", hint="use latest or latest-verified")
    verdicts = latest_verdicts(s, [r.id for _, r in items]) if select_ == "latest-verified" else {}
    by_adapter: dict[str, list[V]] = defaultdict(list)
    for name, row in items:
        by_adapter[name].append(row)
    out, refusals = [], []
    for name in sorted(by_adapter):
        rows = sorted(by_adapter[name], key=lambda r: r.version, reverse=True)
        if select_ == "latest-verified":
            rows = [r for r in rows if r.base_model_id and verdicts.get(r.id, {}).get(r.base_model_id)]
        if not rows:
            out.append(RT.BulkItem(f"{name}@{alias}", "skipped", "no verified version matches"))
            continue
        adapter = A.lock_adapter(s, name)
        try:
            ch = A.move(s, adapter, alias, rows[0], actor=actor, reason=reason, force=force)
        except PolicyViolation as e:
            refusals.append(f"{name}@{rows[0].version}: " + "; ".join(e.context.get("violations", [])))
            continue
        action = "promoted" if ch.changed else "unchanged"
        detail = f"{ch.from_version} -> {ch.to_version}" + (" (overridden)" if ch.overridden else "")
        out.append(RT.BulkItem(f"{name}@{rows[0].version}", action, detail if ch.changed else f"already {alias}"))
    if refusals:
        raise PolicyViolation(f"promotion of {alias} refused for {len(refusals)} adapter(s), nothing changed: "
                              + " | ".join(refusals), violations=refusals, alias=alias,
                              hint="narrow the query, fix the gates, or override with --force (admin; recorded)")
    return out
