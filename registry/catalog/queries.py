"""The read side of the catalog: lookups and search, returning result types."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from registry import types as T
from registry.catalog import convert
from registry.catalog import models as M
from registry.errors import AdapterNotFound, BaseModelNotFound, InvalidInput, VersionNotFound
from registry.refs import MetricFilter, Ref, check_metric_name

V = M.AdapterVersion
HEX = re.compile(r"^[0-9a-f]{8,64}$")


def get_adapter(s: Session, name: str) -> M.Adapter:
    row = s.scalar(select(M.Adapter).where(M.Adapter.name == name))
    if row is None:
        raise AdapterNotFound(f"no adapter named {name!r}", name=name,
                              hint="list adapters with: adapter-registry ls")
    return row


def get_version(s: Session, ref: Ref) -> tuple[M.Adapter, M.AdapterVersion]:
    """The version a reference points to (alias, number, or the latest)."""
    adapter = get_adapter(s, ref.name)
    if ref.alias:
        al = s.get(M.Alias, (adapter.id, ref.alias))
        if al is None:
            raise VersionNotFound(f"adapter {ref.name!r} has no alias {ref.alias!r}", name=ref.name,
                                  alias=ref.alias)
        return adapter, s.get(V, al.version_id)
    q = select(V).where(V.adapter_id == adapter.id)
    q = q.where(V.version == ref.version) if ref.version is not None else q.order_by(V.version.desc()).limit(1)
    row = s.scalar(q)
    if row is None:
        raise VersionNotFound(f"adapter {ref.name!r} has no version {ref.version}" if ref.version is not None
                              else f"adapter {ref.name!r} has no versions", name=ref.name, version=ref.version)
    return adapter, row


def get_base(s: Session, text: str) -> M.BaseModelRow:
    """A base model by NAME (newest revision), NAME@REVISION, NAME@FINGERPRINT-PREFIX or fingerprint."""
    name, _, rev = str(text).partition("@")
    B = M.BaseModelRow
    q = select(B)
    if rev:
        q = q.where(B.name == name, (B.revision == rev) | (B.fingerprint.startswith(rev) if HEX.match(rev) else False))
    elif HEX.match(name):
        q = q.where((B.name == name) | B.fingerprint.startswith(name))
    else:
        q = q.where(B.name == name)
    row = s.scalar(q.order_by(B.id.desc()).limit(1))
    if row is None:
        raise BaseModelNotFound(f"unknown base model {text!r}", base=text)
    return row


def base_ids(s: Session, text: str) -> list[int]:
    """Every registered revision of a base NAME (or the one NAME@REV names)."""
    if "@" in text or HEX.match(text):
        return [get_base(s, text).id]
    ids = list(s.scalars(select(M.BaseModelRow.id).where(M.BaseModelRow.name == text)))
    if not ids:
        raise BaseModelNotFound(f"unknown base model {text!r}", base=text)
    return ids


def list_bases(s: Session, name: str | None = None) -> list[T.BaseModel]:
    q = select(M.BaseModelRow).order_by(M.BaseModelRow.name, M.BaseModelRow.id)
    if name:
        q = q.where(M.BaseModelRow.name == name)
    return [convert.base_model(r) for r in s.scalars(q)]


@dataclass(frozen=True)
class SearchQuery:
    base: str | None = None
    min_rank: int | None = None
    max_rank: int | None = None
    peft_type: str | None = None
    target_modules: Sequence[str] = ()
    tags: dict[str, str] = field(default_factory=dict)
    metrics: Sequence[MetricFilter] = ()
    sort: str | None = None  # created (default) | name | rank | metric:NAME[:asc]
    limit: int = 50
    offset: int = 0
    include_deprecated: bool = False
    name: str | None = None  # exact name, or a namespace prefix ending in "/"
    use_dora: bool | None = None
    count: bool = False


def _sort_metric(sort: str | None) -> tuple[str, bool] | None:
    if not sort or not sort.startswith("metric:"):
        if sort not in (None, "created", "name", "rank", "version"):
            raise InvalidInput(f"invalid sort {sort!r}", hint="sort by created, name, rank or metric:NAME[:asc]")
        return None
    parts = sort.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("asc", "desc")):
        raise InvalidInput(f"invalid sort {sort!r}", hint="write metric:NAME or metric:NAME:asc")
    return check_metric_name(parts[1]), len(parts) == 3 and parts[2] == "asc"


def search(s: Session, q: SearchQuery) -> T.SearchPage:
    """Adapter versions matching every filter, in a stable order."""
    if q.limit < 0 or q.limit > 1000 or q.offset < 0:
        raise InvalidInput("limit must be 0..1000 and offset >= 0")
    sm = _sort_metric(q.sort)
    ids = base_ids(s, q.base) if q.base else None
    stmt = select(V.id)
    conds = []
    if sm:
        # Drive the query from metric_values: (metric, base_model_id, value) walks in sort order and
        # the denormalised base/rank/deprecated columns filter without touching adapter_versions.
        mv = aliased(M.MetricValue)
        stmt = select(V.id).select_from(mv).join(V, V.id == mv.version_id)
        conds.append(mv.metric == sm[0])
        if ids is not None:
            conds.append(mv.base_model_id.in_(ids))
        if q.max_rank is not None:
            conds.append(mv.rank <= q.max_rank)
        if q.min_rank is not None:
            conds.append(mv.rank >= q.min_rank)
        if not q.include_deprecated:
            conds.append(mv.deprecated.is_(False))
        order = [mv.value.asc() if sm[1] else mv.value.desc(), V.id.desc()]
    else:
        if ids is not None:
            conds.append(V.base_model_id.in_(ids))
        if q.max_rank is not None:
            conds.append(V.rank <= q.max_rank)
        if q.min_rank is not None:
            conds.append(V.rank >= q.min_rank)
        if not q.include_deprecated:
            conds.append(V.deprecated.is_(False))
        order = {"rank": [V.rank.desc(), V.id.desc()], "version": [V.version.desc(), V.id.desc()]}.get(
            q.sort or "", [V.id.desc()])
    if q.sort == "name":
        stmt = stmt.join(M.Adapter, M.Adapter.id == V.adapter_id)
        order = [M.Adapter.name.asc(), V.version.desc()]
    if q.peft_type:
        conds.append(V.peft_type == q.peft_type.upper())
    if q.use_dora is not None:
        conds.append(V.use_dora.is_(q.use_dora))
    if q.name:
        sub = select(M.Adapter.id)
        sub = sub.where(M.Adapter.name.startswith(q.name)) if q.name.endswith("/") else sub.where(M.Adapter.name == q.name)
        conds.append(V.adapter_id.in_(sub))
    for mod in q.target_modules:
        tm = M.VersionTargetModule
        conds.append(exists().where(and_(tm.version_id == V.id, tm.module == mod)))
    for k, v in q.tags.items():
        conds.append(exists().where(and_(M.Tag.version_id == V.id, M.Tag.key == k, M.Tag.value == v)))
    for f in q.metrics:
        if sm and f.metric == sm[0]:
            conds.append(_cmp(mv.value, f))
        else:
            m2 = M.MetricValue
            conds.append(exists().where(and_(m2.version_id == V.id, m2.metric == f.metric, _cmp(m2.value, f))))
    stmt = stmt.where(*conds)
    total = s.scalar(select(func.count()).select_from(stmt.subquery())) if q.count else None
    page_ids = list(s.scalars(stmt.order_by(*order).limit(q.limit).offset(q.offset)))
    rows = {r.id: r for r in s.scalars(select(V).where(V.id.in_(page_ids)))} if page_ids else {}
    return T.SearchPage(tuple(hydrate(s, [rows[i] for i in page_ids])), total, q.limit, q.offset)


def _cmp(col, f: MetricFilter):
    return {">=": col >= f.value, "<=": col <= f.value, ">": col > f.value, "<": col < f.value,
            "==": col == f.value}[f.op]


def hydrate(s: Session, rows: Sequence[M.AdapterVersion]) -> list[T.AdapterVersion]:
    """Result types for version rows, with tags, aliases and metrics loaded in a few batched queries."""
    if not rows:
        return []
    vids = [r.id for r in rows]
    names = dict(s.execute(select(M.Adapter.id, M.Adapter.name).where(
        M.Adapter.id.in_({r.adapter_id for r in rows}))).all())
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    for vid, k, v in s.execute(select(M.Tag.version_id, M.Tag.key, M.Tag.value).where(M.Tag.version_id.in_(vids))):
        tags[vid][k] = v
    aliases: dict[int, list[str]] = defaultdict(list)
    for vid, a in s.execute(select(M.Alias.version_id, M.Alias.alias).where(M.Alias.version_id.in_(vids))
                            .order_by(M.Alias.alias)):
        aliases[vid].append(a)
    metrics: dict[int, dict[str, float]] = defaultdict(dict)
    for vid, m, v in s.execute(select(M.MetricValue.version_id, M.MetricValue.metric, M.MetricValue.value)
                               .where(M.MetricValue.version_id.in_(vids)).order_by(M.MetricValue.metric)):
        metrics[vid][m] = v
    bids = {r.base_model_id for r in rows if r.base_model_id}
    bases = {b.id: b for b in s.scalars(select(M.BaseModelRow).where(M.BaseModelRow.id.in_(bids)))} if bids else {}
    succ = _successor_refs(s, [r.successor_id for r in rows if r.successor_id])
    return [convert.version(r, name=names[r.adapter_id], base=bases.get(r.base_model_id), tags=dict(tags[r.id]),
                            aliases=tuple(aliases[r.id]), metrics=dict(metrics[r.id]),
                            successor=succ.get(r.successor_id)) for r in rows]


def _successor_refs(s: Session, ids: Iterable[int]) -> dict[int, str]:
    ids = list(ids)
    if not ids:
        return {}
    q = select(V.id, M.Adapter.name, V.version).join(M.Adapter, M.Adapter.id == V.adapter_id).where(V.id.in_(ids))
    return {i: f"{n}@{v}" for i, n, v in s.execute(q)}


def detail(s: Session, adapter: M.Adapter, row: M.AdapterVersion) -> T.AdapterVersion:
    """One version with everything `show` prints."""
    base = hydrate(s, [row])[0]
    ref = f"{adapter.name}@{row.version}"
    evals = s.scalars(select(M.EvalResult).where(M.EvalResult.version_id == row.id).order_by(M.EvalResult.id))
    ver = s.execute(select(M.Verification, M.BaseModelRow).join(M.BaseModelRow,
                    M.BaseModelRow.id == M.Verification.base_model_id)
                    .where(M.Verification.version_id == row.id).order_by(M.Verification.id.desc()).limit(20))
    merged = s.execute(select(M.MergedArtifact, M.BaseModelRow).join(M.BaseModelRow,
                       M.BaseModelRow.id == M.MergedArtifact.base_model_id)
                       .where(M.MergedArtifact.version_id == row.id).order_by(M.MergedArtifact.id))
    pubs = s.scalars(select(M.Publication).where(M.Publication.version_id == row.id).order_by(M.Publication.id))
    import dataclasses

    return dataclasses.replace(
        base,
        files=tuple(T.FileInfo(f.path, f.digest, f.size, f.role) for f in row.files),
        compat=row.compat, training=row.training, config=row.config,
        evals=tuple(convert.eval_result(e, ref) for e in evals),
        verifications=tuple(convert.verification(v, ref, b) for v, b in ver),
        merged=tuple(convert.merged(m, ref, b) for m, b in merged),
        publications=tuple(convert.publication(p, ref) for p in pubs),
    )


def adapter_summary(s: Session, adapter: M.Adapter) -> T.Adapter:
    aliases = {a: v for a, v in s.execute(select(M.Alias.alias, V.version).join(V, V.id == M.Alias.version_id)
                                            .where(M.Alias.adapter_id == adapter.id))}
    rows = list(s.scalars(select(V).where(V.adapter_id == adapter.id).order_by(V.version.desc())))
    return T.Adapter(adapter.name, adapter.description, adapter.latest_version, aliases, adapter.created_at,
                     adapter.created_by, tuple(hydrate(s, rows)))


def alias_history(s: Session, name: str, alias: str | None = None) -> list[T.AliasMove]:
    adapter = get_adapter(s, name)
    q = select(M.AliasHistory).where(M.AliasHistory.adapter_id == adapter.id)
    if alias:
        q = q.where(M.AliasHistory.alias == alias)
    return [convert.alias_move(r, name) for r in s.scalars(q.order_by(M.AliasHistory.id))]
