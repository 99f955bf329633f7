"""Aliases (production, staging, ...) and their promotion policies, inside the caller's transaction.

Concurrency: every alias change first locks the adapter row (`lock_adapter`). On PostgreSQL that
is SELECT ... FOR UPDATE, so two moves of aliases of one adapter run one after the other and the
second reads the first's result as its `from_version` (READ COMMITTED takes a fresh snapshot per
statement, and the alias is read after the lock is granted). On SQLite the write transaction began
with BEGIN IMMEDIATE, so writers are already serialised. Either way the last writer wins cleanly
and the history is a chain: each move's `from_version` is the previous move's `to_version`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import gates
from registry.catalog import commands as C
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.catalog.convert import base_label
from registry.catalog.rows import row as need
from registry.errors import PolicyViolation, VersionNotFound
from registry.refs import check_alias, parse_ref
from registry.release import types as RT
from registry.release.policy import PolicySpec, VersionFacts, evaluate

V = M.AdapterVersion


def lock_adapter(s: Session, name: str) -> M.Adapter:
    """The adapter row, locked until the end of the transaction (see the module docstring)."""
    Q.get_adapter(s, name)  # the friendly NotFound
    return s.scalars(select(M.Adapter).where(M.Adapter.name == name).with_for_update()).one()


def base_ref_text(b: M.BaseModelRow) -> str:
    """A reference Q.get_base resolves back to exactly this row."""
    return f"{b.name}@{b.revision or b.fingerprint}"


def facts(s: Session, name: str, row: V, spec: PolicySpec | None = None) -> VersionFacts:
    """What the gates look at for one version (with `spec`, also the serving engines it requires)."""
    base = row.base_model
    verified = gates.verdict(s, row.id, base.id).verified if base is not None else None
    metrics = dict(s.execute(select(M.MetricValue.metric, M.MetricValue.value)
                             .where(M.MetricValue.version_id == row.id)).all())
    engines = spec.require_verified_engines if spec is not None else ()
    engine_verified = gates.engine_verdicts(s, row.id, base.id, engines) if base is not None and engines else {}
    return VersionFacts(f"{name}@{row.version}", base_label(base) if base is not None else None,
                        verified, metrics, bool(row.deprecated), engine_verified)


def policy_spec(p: M.AliasPolicy | None) -> PolicySpec | None:
    if p is None:
        return None
    return PolicySpec.parse(require_verified=p.require_verified, require_metrics=p.require_metrics or (),
                            require_verified_engines=p.require_verified_engines or ())


def resolve_target(s: Session, adapter: M.Adapter, version: int | str) -> V:
    """A version of this adapter by number ('3', 'v3'), alias ('staging') or 'latest'."""
    _a, row = Q.get_version(s, parse_ref(f"{adapter.name}@{version}"))
    return row


def move(s: Session, adapter: M.Adapter, alias: str, target: V | None, *, actor: str, reason: str | None,
         force: bool) -> RT.AliasChange:
    """Point `alias` at `target` (None: remove it), enforcing the policy unless forced.

    Raises:
        PolicyViolation: the alias is protected and the version fails a gate (nothing changed)
        VersionNotFound: removing an alias that does not exist
    """
    check_alias(alias)
    cur = s.get(M.Alias, (adapter.id, alias), populate_existing=True)
    from_version = need(s, V, cur.version_id).version if cur is not None else None
    spec = policy_spec(s.get(M.AliasPolicy, (adapter.id, alias)))
    label = f"{adapter.name}@{alias}"
    if target is None:
        if cur is None:
            raise VersionNotFound(f"adapter {adapter.name!r} has no alias {alias!r}", name=adapter.name, alias=alias)
        violations = [f"{label} is protected"] if spec is not None else []
        if violations and not force:
            raise PolicyViolation(f"{label} is protected and cannot be removed", violations=violations,
                                  name=adapter.name, alias=alias,
                                  hint="unprotect it first, or override with --force (admin; recorded)")
        s.delete(cur)
        policy = None
    else:
        policy = evaluate(alias, spec, facts(s, adapter.name, target, spec))
        if cur is not None and cur.version_id == target.id:
            return RT.AliasChange(adapter.name, alias, from_version, target.version, changed=False,
                                  overridden=False, policy=policy)
        violations = list(policy.violations)
        if violations and not force:
            raise PolicyViolation(f"{label} is protected; {policy.ref} fails its policy: " + "; ".join(violations),
                                  violations=violations, name=adapter.name, alias=alias, ref=policy.ref,
                                  hint="fix the failing gates, or override with --force (admin; recorded)")
        if cur is None:
            s.add(M.Alias(adapter_id=adapter.id, alias=alias, version_id=target.id, updated_by=actor))
        else:
            cur.version_id, cur.updated_at, cur.updated_by = target.id, M.utcnow(), actor
    to_version = target.version if target is not None else None
    overridden = bool(violations)
    s.add(M.AliasHistory(adapter_id=adapter.id, alias=alias, from_version=from_version, to_version=to_version,
                         actor=actor, reason=reason, overridden=overridden, violations=violations))
    C.record(s, actor, "alias.set" if target is not None else "alias.remove", label,
             {"from": from_version, "to": to_version, "reason": reason, "overridden": overridden,
              "violations": violations})
    s.flush()
    return RT.AliasChange(adapter.name, alias, from_version, to_version, changed=True, overridden=overridden,
                          policy=policy)


def protect(s: Session, adapter: M.Adapter, alias: str, spec: PolicySpec, *, actor: str) -> M.AliasPolicy:
    """Create or replace the policy of an alias (the alias need not exist yet)."""
    check_alias(alias)
    p = s.get(M.AliasPolicy, (adapter.id, alias))
    if p is None:
        p = M.AliasPolicy(adapter_id=adapter.id, alias=alias, created_by=actor)
        s.add(p)
    p.require_verified, p.require_metrics = spec.require_verified, spec.expressions
    p.require_verified_engines = list(spec.require_verified_engines)
    p.created_at, p.created_by = M.utcnow(), actor
    C.record(s, actor, "alias.protect", f"{adapter.name}@{alias}",
             {"require_verified": spec.require_verified, "require_metrics": spec.expressions,
              "require_verified_engines": list(spec.require_verified_engines)})
    s.flush()
    return p


def unprotect(s: Session, adapter: M.Adapter, alias: str, *, actor: str) -> bool:
    p = s.get(M.AliasPolicy, (adapter.id, check_alias(alias)))
    if p is None:
        return False
    s.delete(p)
    C.record(s, actor, "alias.unprotect", f"{adapter.name}@{alias}", {})
    return True


def policy_info(s: Session, adapter: M.Adapter, p: M.AliasPolicy) -> RT.AliasPolicy:
    """A policy with the version its alias points to now evaluated against it."""
    cur = s.get(M.Alias, (adapter.id, p.alias))
    current = None
    if cur is not None:
        spec = policy_spec(p)
        current = evaluate(p.alias, spec, facts(s, adapter.name, need(s, V, cur.version_id), spec))
    return RT.AliasPolicy(adapter.name, p.alias, p.require_verified, tuple(p.require_metrics or ()),
                          p.created_at, p.created_by, current, tuple(p.require_verified_engines or ()))


def list_aliases(s: Session, name: str | None = None) -> list[RT.AliasInfo]:
    """Every alias of one adapter (or of all), with its policy evaluated when protected."""
    q = (select(M.Alias, M.Adapter, V.version).join(M.Adapter, M.Adapter.id == M.Alias.adapter_id)
         .join(V, V.id == M.Alias.version_id).order_by(M.Adapter.name, M.Alias.alias))
    if name is not None:
        q = q.where(M.Alias.adapter_id == Q.get_adapter(s, name).id)
    out = []
    for al, adapter, version in s.execute(q).all():
        p = s.get(M.AliasPolicy, (adapter.id, al.alias))
        out.append(RT.AliasInfo(adapter.name, al.alias, version, al.updated_at, al.updated_by, p is not None,
                                policy_info(s, adapter, p) if p is not None else None))
    if name is not None:  # protected aliases that point nowhere yet are worth seeing too
        adapter = Q.get_adapter(s, name)
        have = {a.alias for a in out}
        for p in s.scalars(select(M.AliasPolicy).where(M.AliasPolicy.adapter_id == adapter.id)):
            if p.alias not in have:
                out.append(RT.AliasInfo(adapter.name, p.alias, None, p.created_at, p.created_by, True,
                                        policy_info(s, adapter, p)))
    return out


def history(s: Session, name: str, alias: str | None = None, *, limit: int | None = None) -> list[RT.AliasMove]:
    """Every move of the adapter's aliases, oldest first (the newest `limit` when given)."""
    adapter = Q.get_adapter(s, name)
    H = M.AliasHistory
    q = select(H).where(H.adapter_id == adapter.id)
    if alias:
        q = q.where(H.alias == check_alias(alias))
    if limit is not None:
        rows = list(s.scalars(q.order_by(H.id.desc()).limit(limit)))[::-1]
    else:
        rows = list(s.scalars(q.order_by(H.id)))
    return [RT.AliasMove(name, r.alias, r.from_version, r.to_version, r.actor, r.reason, r.overridden, r.at,
                         id=r.id, violations=tuple(r.violations or ())) for r in rows]
