"""The read side of the catalog: lookups and search, returning result types."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import BigInteger, Float, String, and_, bindparam, cast, exists, func, literal, null, select, union_all
from sqlalchemy.orm import Session, aliased, contains_eager

from registry import types as T
from registry.catalog import convert
from registry.catalog import models as M
from registry.errors import AdapterNotFound, BaseModelNotFound, Conflict, InvalidInput, VersionNotFound
from registry.evals import lower_is_better
from registry.refs import MetricFilter, Ref, check_metric_name

if TYPE_CHECKING:  # annotations only
    from sqlalchemy import BindParameter, Connection, Select, SQLColumnExpression

V = M.AdapterVersion
_T = TypeVar("_T")
HEX = re.compile(r"[0-9a-f]{8,64}")  # fullmatch only
COMMIT_PREFIX = re.compile(r"[0-9a-f]{7,40}")  # a Hub commit or its prefix, as find_snapshot takes


def get_adapter(s: Session, name: str) -> M.Adapter:
    row = s.scalar(select(M.Adapter).where(M.Adapter.name == name))
    if row is None:
        raise AdapterNotFound(f"no adapter named {name!r}", name=name,
                              hint="list adapters with: adapter-registry ls")
    return row


def _version_stmt(kind: str) -> Select[M.Adapter, M.AdapterVersion]:
    # Built once: constructing SQLAlchemy expressions costs more Python than running these
    # statements does. The base rides along (contains_eager) so hydrate needs no query for it.
    q = (select(M.Adapter, V).join(V, V.adapter_id == M.Adapter.id)
         .outerjoin(M.BaseModelRow, M.BaseModelRow.id == V.base_model_id)
         .options(contains_eager(V.base_model)).where(M.Adapter.name == bindparam("name")))
    if kind == "alias":
        return q.join(M.Alias, and_(M.Alias.adapter_id == M.Adapter.id, M.Alias.alias == bindparam("alias"),
                                    M.Alias.version_id == V.id))
    if kind == "version":
        return q.where(V.version == bindparam("version"))
    return q.order_by(V.version.desc()).limit(1)


_VERSION_STMTS = {k: _version_stmt(k) for k in ("alias", "version", "latest")}


def get_version(s: Session, ref: Ref) -> tuple[M.Adapter, M.AdapterVersion]:
    """The version a reference points to (alias, number, or the latest), in one joined statement."""
    kind = "alias" if ref.alias else ("version" if ref.version is not None else "latest")
    params = {"name": ref.name, "alias": ref.alias, "version": ref.version}
    found = s.execute(_VERSION_STMTS[kind], {k: v for k, v in params.items() if v is not None}).first()
    if found is not None:
        return found[0], found[1]
    get_adapter(s, ref.name)  # raises AdapterNotFound when that is the reason
    if ref.alias:
        raise VersionNotFound(f"adapter {ref.name!r} has no alias {ref.alias!r}", name=ref.name, alias=ref.alias)
    raise VersionNotFound(f"adapter {ref.name!r} has no version {ref.version}" if ref.version is not None
                          else f"adapter {ref.name!r} has no versions", name=ref.name, version=ref.version)


def get_base(s: Session, text: str, *, namespace: str | None = None) -> M.BaseModelRow:
    """A base model by NAME (newest revision), NAME@REVISION, NAME@FINGERPRINT-PREFIX or fingerprint;
    where no name matches, NAME may be the base's Hub id (any casing, as on the Hub; REVISION may
    then be a commit prefix of 7+ hex digits, as find_snapshot takes).

    Raises:
        Conflict: the Hub id is recorded on several registered bases, even among those visible to
            `namespace` ("team-a/"), which are preferred (hub_preferred).
    """
    name, _, rev = str(text).partition("@")
    B = M.BaseModelRow
    by_rev: list[SQLColumnExpression[bool]] = []
    hub_rev: list[SQLColumnExpression[bool]] = []
    if rev:
        by_fp = B.fingerprint.startswith(rev) if HEX.fullmatch(rev) else False
        by_rev = [(B.revision == rev) | by_fp]
        by_commit = B.revision.startswith(rev.lower()) if COMMIT_PREFIX.fullmatch(rev.lower()) else False
        hub_rev = [(B.revision == rev) | by_fp | by_commit]
    by_name = (B.name == name) | B.fingerprint.startswith(name) if not rev and HEX.fullmatch(name) else B.name == name
    row = s.scalar(select(B).where(by_name, *by_rev).order_by(B.id.desc()).limit(1))
    if row is not None:
        return row
    by_hub = list(s.scalars(select(B).where(by_hub_id(name), *hub_rev).order_by(B.id.desc())))
    rows: list[M.BaseModelRow] = hub_preferred(s, by_hub, hub_id=name, namespace=namespace)
    if rows:
        return rows[0]
    raise BaseModelNotFound(f"unknown base model {text!r}", base=text)


def by_hub_id(hub_id: str) -> SQLColumnExpression[bool]:
    """The bases recorded with this Hub id (the Hub treats ids without regard to case)."""
    return func.lower(M.BaseModelRow.hub_id) == hub_id.lower()


def hub_preferred(s: Session, rows: list[Any], *, hub_id: str, namespace: str | None) -> list[Any]:
    """The rows (bases, or rows with their id and name) a Hub-id match stands for: one registry
    name's. Two teams may register the same Hub model under their own names; the bases visible to
    `namespace` ("team-a/", visible_bases) are preferred, and what is still ambiguous is refused
    without naming the other namespaces' bases."""
    names = {r.name for r in rows}
    if len(names) > 1 and namespace is not None:
        seen = visible_base_ids(s, [r.id for r in rows], namespace)
        rows = [r for r in rows if r.id in seen] or rows
        names = {r.name for r in rows}
    if len(names) > 1:
        raise Conflict(f"Hub id {hub_id!r} is recorded on {len(names)} registered bases: "
                       "name the base by its registry name", hub_id=hub_id, count=len(names),
                       hint="list the bases with: adapter-registry base ls")
    return rows


def namespace_prefix(name: str) -> str | None:
    """The namespace prefix ("team-a/") of a name ("team-a/bot", or "team-a/" itself), whose bases a
    Hub-id lookup prefers (registry.targets.namespace_of, as a prefix)."""
    return name.split("/", 1)[0] + "/" if "/" in name else None


def base_rows(s: Session, text: str, *, namespace: str | None = None) -> list[M.BaseModelRow]:
    """Every registered revision of a base NAME or Hub id (or the one NAME@REV names); a Hub id
    stands for one registry name's revisions (hub_preferred, with `namespace`)."""
    if "@" in text or HEX.fullmatch(text):
        return [get_base(s, text, namespace=namespace)]
    B = M.BaseModelRow
    ids = list(s.scalars(select(B).where(B.name == text))) or hub_preferred(
        s, list(s.scalars(select(B).where(by_hub_id(text)))), hub_id=text, namespace=namespace)
    if not ids:
        raise BaseModelNotFound(f"unknown base model {text!r}", base=text)
    return ids


def list_bases(s: Session, name: str | None = None, *, namespace: str | None = None) -> list[T.BaseModel]:
    """Every registered base (revision), by name; with `namespace` ("team-a/"), only the bases a
    reader narrowed to it may see (visible_bases)."""
    q = select(M.BaseModelRow).order_by(M.BaseModelRow.name, M.BaseModelRow.id)
    if name:
        q = q.where(M.BaseModelRow.name == name)
    if namespace is not None:
        q = q.where(visible_bases(namespace))
    return [convert.base_model(r) for r in s.scalars(q)]


def in_namespace(col: SQLColumnExpression[str], prefix: str) -> SQLColumnExpression[bool]:
    """`col` starts with `prefix`, literally: LIKE's `_` and `%` in a name are not wildcards."""
    return col.startswith(prefix, autoescape=True)


def visible_bases(prefix: str) -> SQLColumnExpression[bool]:
    """The bases a reader narrowed to `prefix` may see: named inside it, or used by a version inside it."""
    B = M.BaseModelRow
    used = (select(V.base_model_id).join(M.Adapter, M.Adapter.id == V.adapter_id)
            .where(in_namespace(M.Adapter.name, prefix), V.base_model_id.is_not(None)))
    return in_namespace(B.name, prefix) | B.id.in_(used)


def visible_base_ids(s: Session, ids: Iterable[int], prefix: str) -> set[int]:
    """Which of these bases a reader narrowed to `prefix` may see (visible_bases)."""
    return set(s.scalars(select(M.BaseModelRow.id).where(M.BaseModelRow.id.in_(list(ids)), visible_bases(prefix))))


def blob_visible(s: Session, digest: str, prefix: str | None) -> bool:
    """Whether a reader narrowed to `prefix` (None: the whole catalog) may download a blob: some
    version it may see references it (a file of the version, or of a merged artifact of it, or
    the merged manifest), or a base it may see stored it. A blob nothing references is served to
    nobody but the operator (the route does not ask then)."""
    in_ns = [in_namespace(M.Adapter.name, prefix)] if prefix is not None else []
    files = (select(literal(1)).select_from(M.VersionFile).join(V, V.id == M.VersionFile.version_id)
             .join(M.Adapter, M.Adapter.id == V.adapter_id).where(M.VersionFile.digest == digest, *in_ns).limit(1))
    if s.scalar(files) is not None:
        return True
    # Merged and base file lists are JSON maps (relpath -> {digest, size}): a portable text match
    # finds the candidates (a digest is 64 hex characters, no LIKE wildcard), Python confirms.
    MA = M.MergedArtifact
    merged = (select(MA.manifest_digest, MA.files).join(V, V.id == MA.version_id)
              .join(M.Adapter, M.Adapter.id == V.adapter_id)
              .where((MA.manifest_digest == digest) | cast(MA.files, String).contains(digest), *in_ns))
    for manifest, mfiles in s.execute(merged):
        if manifest == digest or _lists_digest(mfiles, digest):
            return True
    B = M.BaseModelRow
    bases = select(B.files).where(B.weights_stored.is_(True), cast(B.files, String).contains(digest))
    if prefix is not None:
        bases = bases.where(visible_bases(prefix))
    return any(_lists_digest(f, digest) for f in s.scalars(bases))


def _lists_digest(files: Any, digest: str) -> bool:
    return isinstance(files, dict) and any(isinstance(v, dict) and v.get("digest") == digest for v in files.values())


def audit(s: Session, *, limit: int = 100, target: str | None = None, namespace: str | None = None
          ) -> list[T.AuditEntry]:
    """Audit entries, newest first; `target` is a literal prefix of the target. With `namespace`
    (a namespaced admin's), only entries about its names ("team-a/...") and its namespace's tokens."""
    A = M.AuditEntry
    q = select(A).order_by(A.id.desc()).limit(limit)
    if target:
        q = q.where(in_namespace(A.target, target))
    if namespace is not None:
        q = q.where(in_namespace(A.target, namespace + "/")
                    | (A.action.startswith("token.") & (A.details["namespace"].as_string() == namespace)))
    return [T.AuditEntry(a.id, a.at, a.actor, a.action, a.target, a.details) for a in s.scalars(q)]


@dataclass(frozen=True)
class SearchQuery:
    base: str | None = None
    min_rank: int | None = None
    max_rank: int | None = None
    peft_type: str | None = None
    target_modules: Sequence[str] = ()
    tags: dict[str, str] = field(default_factory=dict)
    metrics: Sequence[MetricFilter] = ()
    sort: str | None = None  # created (default) | name | rank | metric:NAME[:asc|:desc] (best first)
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
        raise InvalidInput(f"invalid sort {sort!r}", hint="write metric:NAME, metric:NAME:asc or metric:NAME:desc")
    # best first unless told: ascending for a lower-is-better metric (perplexity), else descending
    ascending = parts[2] == "asc" if len(parts) == 3 else lower_is_better(parts[1])
    return check_metric_name(parts[1]), ascending


def search(s: Session, q: SearchQuery) -> T.SearchPage:
    """Adapter versions matching every filter, in a stable order.

    The plan matters at 100k versions: a base NAME stands for all its revisions, and neither
    SQLite nor PostgreSQL can walk an index in order across `base_model_id IN (...)`, so each
    revision gets its own ordered, limited subquery (an index walk that stops after limit+offset
    rows) and the UNION ALL of those is merged and cut (docs/BENCHMARKS.md, lookup section).
    """
    if q.limit < 0 or q.limit > 1000 or q.offset < 0:
        raise InvalidInput("limit must be 0..1000 and offset >= 0")
    sm = _sort_metric(q.sort)
    if s.autoflush and (s.new or s.dirty or s.deleted):
        s.flush()  # what Session.execute does first (release/bulk.py searches inside a write transaction)
    bases = {b.id: b for b in _search_bases(s, q.base, namespace=_search_namespace(q))} if q.base else {}
    ids = list(bases) if q.base else None
    plan = _plan(q, sm)
    conds = [*plan.conds, *_filters(q, plan)]
    total = None
    if q.count:
        counted = plan.src.add_columns(plan.vid).where(*conds, *_base_filter(plan, ids))
        total = s.scalar(select(func.count()).select_from(counted.subquery()))
    # Columns in, rows out: the statements go to the connection, past the ORM's result layer.
    c = s.connection()
    page_ids = list(c.execute(_page(q, plan, conds, ids).limit(q.limit).offset(q.offset)).scalars())
    found, names = _page_rows(c, page_ids)
    missing = {r.base_model_id for r in found if r.base_model_id} - bases.keys()
    if missing:  # no base given: the page's bases, light (hydrate would load whole rows)
        bases.update((b.id, b) for b in c.execute(_BASES_BY_ID, {"ids": list(missing)}))
    return T.SearchPage(tuple(hydrate(s, found, names=names, bases=bases)), total, q.limit, q.offset)


@dataclass(frozen=True)
class _Plan:
    """Where a search reads from and in which order (the columns are those of `src`'s table)."""

    src: Select[Any]  # FROM and JOINs only; each statement adds its own columns
    vid: SQLColumnExpression[int]
    base: SQLColumnExpression[int | None]
    rank: SQLColumnExpression[int | None]
    deprecated: SQLColumnExpression[bool]
    keys: list[tuple[SQLColumnExpression[Any], bool]]  # (column, descending), most significant first
    conds: list[SQLColumnExpression[bool]]  # what choosing this source already requires
    metric: str | None = None  # the sort metric, whose value column a filter on it reuses
    metric_value: SQLColumnExpression[float] | None = None


def _plan(q: SearchQuery, sm: tuple[str, bool] | None) -> _Plan:
    """metric_values for a metric sort (`sm`: metric, ascending), else adapter_versions."""
    if sm:
        # Driven from metric_values: (metric, base_model_id, value, version_id) walks in sort order
        # and the denormalised base/rank/deprecated columns filter without touching adapter_versions.
        mv = aliased(M.MetricValue)
        src = select().select_from(mv).join(V, V.id == mv.version_id)
        keys: list[tuple[SQLColumnExpression[Any], bool]] = [(mv.value, not sm[1]), (mv.version_id, True)]
        return _Plan(src, mv.version_id, mv.base_model_id, mv.rank, mv.deprecated, keys, [mv.metric == sm[0]],
                     sm[0], mv.value)
    src = select().select_from(V)
    if q.sort == "name":
        src = src.join(M.Adapter, M.Adapter.id == V.adapter_id)
        keys = [(M.Adapter.name, False), (V.version, True)]
    else:
        by_sort: dict[str, list[tuple[SQLColumnExpression[Any], bool]]] = {
            "rank": [(V.rank, True), (V.id, True)], "version": [(V.version, True), (V.id, True)]}
        keys = by_sort.get(q.sort or "", [(V.id, True)])
    return _Plan(src, V.id, V.base_model_id, V.rank, V.deprecated, keys, [])


def _filters(q: SearchQuery, p: _Plan) -> list[SQLColumnExpression[bool]]:
    """The query's filters other than the base, in terms of the plan's columns where it has them."""
    conds: list[SQLColumnExpression[bool]] = []
    # the largest and smallest rank of any module (r with rank_pattern), not r alone: an r=4 adapter
    # with v_proj at 8 is not "at most rank 4"
    if q.max_rank is not None:
        conds.append(V.max_rank <= q.max_rank)
    if q.min_rank is not None:
        conds.append(V.min_rank >= q.min_rank)
    if not q.include_deprecated:
        conds.append(p.deprecated.is_(False))
    if q.peft_type:
        conds.append(V.peft_type == q.peft_type.upper())
    if q.use_dora is not None:
        conds.append(V.use_dora.is_(q.use_dora))
    if q.name:
        by_name = in_namespace(M.Adapter.name, q.name) if q.name.endswith("/") else M.Adapter.name == q.name
        conds.append(V.adapter_id.in_(select(M.Adapter.id).where(by_name)))
    for mod in q.target_modules:
        tm = M.VersionTargetModule
        conds.append(exists().where(and_(tm.version_id == V.id, tm.module == mod)))
    for k, v in q.tags.items():
        conds.append(exists().where(and_(M.Tag.version_id == V.id, M.Tag.key == k, M.Tag.value == v)))
    for f in q.metrics:
        if p.metric_value is not None and f.metric == p.metric:
            conds.append(_cmp(p.metric_value, f))
        else:
            m2 = M.MetricValue
            conds.append(exists().where(and_(m2.version_id == V.id, m2.metric == f.metric, _cmp(m2.value, f))))
    return conds


def _base_filter(p: _Plan, ids: list[int] | None) -> list[SQLColumnExpression[bool]]:
    """The base condition of a single statement (the per-revision union puts it in each part instead)."""
    if ids is None:
        return []
    return [p.base.in_(ids) if len(ids) > 1 else p.base == ids[0]]


def _ordered(stmt: Select[Any], cols: Sequence[SQLColumnExpression[Any]], p: _Plan) -> Select[Any]:
    """`stmt` ordered by `cols`, which stand for the plan's sort keys (the same or their subquery copies)."""
    return stmt.order_by(*[c.desc() if desc else c.asc() for c, (_k, desc) in zip(cols, p.keys)])


def _page(q: SearchQuery, p: _Plan, conds: list[SQLColumnExpression[bool]], ids: list[int] | None) -> Select[Any]:
    """The ids of the matching versions, in order (the caller applies limit and offset)."""
    key_cols = [c for c, _ in p.keys]
    if ids is not None and len(ids) > 1 and q.sort != "name":
        n = q.limit + q.offset
        cols: list[SQLColumnExpression[Any]] = [p.vid.label("vid")]
        cols += [c.label(f"k{i}") for i, c in enumerate(key_cols)]
        parts = [_ordered(p.src.add_columns(*cols).where(*conds, p.base == b), key_cols, p).limit(n).subquery()
                 for b in ids]
        u = union_all(*[select(part) for part in parts]).subquery()
        return _ordered(select(u.c.vid), [u.c[f"k{i}"] for i in range(len(key_cols))], p)
    return _ordered(p.src.add_columns(p.vid).where(*conds, *_base_filter(p, ids)), key_cols, p)


def _search_namespace(q: SearchQuery) -> str | None:
    """The namespace ("team-a/") a search concerns, for a Hub-id --base: the one its name filter is in."""
    return namespace_prefix(q.name) if q.name else None


def _search_bases(s: Session, text: str, *, namespace: str | None = None) -> Sequence[Any]:
    """base_rows for a search: by NAME, only the columns a page shows (BaseRef) and the engine
    preflight reads, as plain rows (a base's row also holds its whole tensor layout)."""
    if "@" in text or HEX.fullmatch(text):
        return base_rows(s, text, namespace=namespace)
    found: Sequence[Any] = s.connection().execute(_BASES_BY_NAME, {"name": text}).all()
    if not found:  # then by Hub id, any casing, as base_rows does
        found = hub_preferred(s, list(s.connection().execute(select(*_BASE_COLS).where(by_hub_id(text))).all()),
                              hub_id=text, namespace=namespace)
    if not found:
        raise BaseModelNotFound(f"unknown base model {text!r}", base=text)
    return found


def require_visible_base(s: Session, text: str, namespace: str) -> None:
    """A reader narrowed to `namespace` names a base it may see (visible_bases), or gets the same
    BaseModelNotFound as for a base that does not exist: an empty page for another team's base would
    tell that it exists."""
    if not visible_base_ids(s, [r.id for r in _search_bases(s, text, namespace=namespace)], namespace):
        raise BaseModelNotFound(f"unknown base model {text!r}", base=text)


_B = M.BaseModelRow
_BASE_COLS = (_B.id, _B.name, _B.revision, _B.fingerprint, _B.architecture, _B.tie_word_embeddings)
_BASES_BY_NAME = select(*_BASE_COLS).where(_B.name == bindparam("name"))
_BASES_BY_ID = select(*_BASE_COLS).where(_B.id.in_(bindparam("ids", expanding=True)))
# What hydrate and convert.version read of a version, as plain rows (no ORM instances: building
# them was a third of a search page's time) and without show's detail columns (training, compat).
_PAGE_ROWS = (select(M.Adapter.name.label("adapter_name"),
                     *[c for c in V.__table__.c if c.key not in ("training", "compat")])
              .join(M.Adapter, M.Adapter.id == V.adapter_id).where(V.id.in_(bindparam("ids", expanding=True))))


def _page_rows(c: Connection, page_ids: list[int]) -> tuple[list[Any], dict[int, str]]:
    """The page's version rows in page order (columns named as the model's attributes), and
    their adapters' names by id."""
    rows: dict[int, Any] = {}
    names: dict[int, str] = {}
    if page_ids:
        for r in c.execute(_PAGE_ROWS, {"ids": page_ids}):
            rows[r.id], names[r.adapter_id] = r, r.adapter_name
    # A version deleted between the two statements (lookups run without a snapshot) is skipped.
    return [rows[i] for i in page_ids if i in rows], names


def _cmp(col: SQLColumnExpression[float], f: MetricFilter) -> SQLColumnExpression[bool]:
    return {">=": col >= f.value, "<=": col <= f.value, ">": col > f.value, "<": col < f.value,
            "==": col == f.value}[f.op]


def hydrate(s: Session, rows: Sequence[M.AdapterVersion], *, adapters: dict[int, M.Adapter] | None = None,
            bases: dict[int, M.BaseModelRow] | None = None, names: dict[int, str] | None = None
            ) -> list[T.AdapterVersion]:
    """Result types for version rows (ORM rows, or search's plain rows with the same attribute
    names): tags, aliases and metrics come back in one UNION ALL. `names`: adapter id -> name,
    when the caller has them but not the adapters' rows."""
    if not rows:
        return []
    vids = [r.id for r in rows]
    names = {**{i: a.name for i, a in (adapters or {}).items()}, **(names or {})}
    missing = {r.adapter_id for r in rows} - names.keys()
    if missing:
        names.update(s.execute(select(M.Adapter.id, M.Adapter.name).where(M.Adapter.id.in_(missing))).all())
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    aliases: dict[int, list[str]] = defaultdict(list)
    metrics: dict[int, dict[str, float]] = defaultdict(dict)
    targets: dict[int, list[str]] = defaultdict(list)
    for kind, vid, key, text_value, num in s.execute(_DETAILS, {"vids": vids}):
        if kind == 0:
            tags[vid][key] = text_value
        elif kind == 1:
            aliases[vid].append(key)
        elif kind == 2:
            metrics[vid][key] = num
        else:
            targets[vid].append(key)
    bases = dict(bases or {})
    for r in rows:  # loaded along with the version (get_version's contains_eager)
        b = getattr(r, "__dict__", {}).get("base_model")  # (search's plain rows have no __dict__)
        if b is not None:
            bases[b.id] = b
    missing = {r.base_model_id for r in rows if r.base_model_id} - bases.keys()
    if missing:
        bases.update((b.id, b) for b in s.scalars(select(M.BaseModelRow).where(M.BaseModelRow.id.in_(missing))))
    succ = _successor_refs(s, [r.successor_id for r in rows if r.successor_id])
    return [convert.version(r, name=names[r.adapter_id], base=_get(bases, r.base_model_id), tags=dict(tags[r.id]),
                            aliases=tuple(sorted(aliases[r.id])), metrics=dict(sorted(metrics[r.id].items())),
                            successor=_get(succ, r.successor_id),
                            target_module_names=tuple(sorted(targets[r.id]))) for r in rows]


def _get(d: dict[int, _T], key: int | None) -> _T | None:
    """d.get() for a nullable id column."""
    return None if key is None else d.get(key)


_VIDS: BindParameter[list[int]] = bindparam("vids", expanding=True)
# (kind, version_id, key, text, number): 0 tags, 1 aliases, 2 current metric values, 3 target-module
# rows (leaf names); one round trip.
_DETAILS = union_all(
    select(literal(0), M.Tag.version_id, M.Tag.key, M.Tag.value, cast(null(), Float))
    .where(M.Tag.version_id.in_(_VIDS)),
    select(literal(1), M.Alias.version_id, M.Alias.alias, cast(null(), String), cast(null(), Float))
    .where(M.Alias.version_id.in_(_VIDS)),
    select(literal(2), M.MetricValue.version_id, M.MetricValue.metric, cast(null(), String), M.MetricValue.value)
    .where(M.MetricValue.version_id.in_(_VIDS)),
    select(literal(3), M.VersionTargetModule.version_id, M.VersionTargetModule.module, cast(null(), String),
           cast(null(), Float)).where(M.VersionTargetModule.version_id.in_(_VIDS)),
)


def _successor_refs(s: Session, ids: Iterable[int]) -> dict[int, str]:
    ids = list(ids)
    if not ids:
        return {}
    q = select(V.id, M.Adapter.name, V.version).join(M.Adapter, M.Adapter.id == V.adapter_id).where(V.id.in_(ids))
    return {i: f"{n}@{v}" for i, n, v in s.execute(q)}


_VID: BindParameter[int] = bindparam("vid")
_NOTHING = (cast(null(), String), cast(null(), String), cast(null(), BigInteger), cast(null(), String))
# The version's files, plus one row per non-empty relation: show skips the queries that would
# return nothing (most versions have no verifications, merges or publications).
_FILES_AND_PRESENCE = union_all(
    select(literal("file"), M.VersionFile.path, M.VersionFile.digest, M.VersionFile.size, M.VersionFile.role)
    .where(M.VersionFile.version_id == _VID),
    *[select(literal(k), *_NOTHING).where(exists().where(t.version_id == _VID))
      for k, t in (("evals", M.EvalResult), ("verifications", M.Verification), ("merged", M.MergedArtifact),
                   ("publications", M.Publication))],
)


def detail(s: Session, adapter: M.Adapter, row: M.AdapterVersion) -> T.AdapterVersion:
    """One version with everything `show` prints (relations that are empty cost no query)."""
    import dataclasses

    base = hydrate(s, [row], adapters={adapter.id: adapter})[0]
    ref = f"{adapter.name}@{row.version}"
    files, present = [], set()
    for kind, path, digest, size, role in s.execute(_FILES_AND_PRESENCE, {"vid": row.id}):
        if kind == "file":
            files.append((path, digest, size, role))
        else:
            present.add(kind)
    files.sort()
    extra: dict[str, Any] = {}
    if "evals" in present:
        evals = s.scalars(select(M.EvalResult).where(M.EvalResult.version_id == row.id).order_by(M.EvalResult.id))
        extra["evals"] = tuple(convert.eval_result(e, ref) for e in evals)
    if "verifications" in present:
        ver = s.execute(select(M.Verification, M.BaseModelRow).join(M.BaseModelRow,
                        M.BaseModelRow.id == M.Verification.base_model_id)
                        .where(M.Verification.version_id == row.id).order_by(M.Verification.id.desc()).limit(20))
        extra["verifications"] = tuple(convert.verification(v, ref, b) for v, b in ver)
    if "merged" in present:
        merged = s.execute(select(M.MergedArtifact, M.BaseModelRow).join(M.BaseModelRow,
                           M.BaseModelRow.id == M.MergedArtifact.base_model_id)
                           .where(M.MergedArtifact.version_id == row.id).order_by(M.MergedArtifact.id))
        extra["merged"] = tuple(convert.merged(m, ref, b) for m, b in merged)
    if "publications" in present:
        pubs = s.scalars(select(M.Publication).where(M.Publication.version_id == row.id).order_by(M.Publication.id))
        extra["publications"] = tuple(convert.publication(p, ref) for p in pubs)
    return dataclasses.replace(base, files=tuple(T.FileInfo(*f) for f in files), compat=row.compat,
                               training=row.training, config=row.config, **extra)


def adapter_summary(s: Session, adapter: M.Adapter) -> T.Adapter:
    aliases = dict(s.execute(
        select(M.Alias.alias, V.version).join(V, V.id == M.Alias.version_id).where(M.Alias.adapter_id == adapter.id)
    ).all())
    rows = list(s.scalars(select(V).where(V.adapter_id == adapter.id).order_by(V.version.desc())))
    return T.Adapter(adapter.name, adapter.description, adapter.latest_version, aliases, adapter.created_at,
                     adapter.created_by, tuple(hydrate(s, rows)))


def alias_history(s: Session, name: str, alias: str | None = None) -> list[T.AliasMove]:
    adapter = get_adapter(s, name)
    q = select(M.AliasHistory).where(M.AliasHistory.adapter_id == adapter.id)
    if alias:
        q = q.where(M.AliasHistory.alias == alias)
    return [convert.alias_move(r, name) for r in s.scalars(q.order_by(M.AliasHistory.id))]
