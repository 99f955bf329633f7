"""What a new base-model revision leaves unverified, and re-verification jobs for it.

A version counts as impacted when it belongs to an earlier revision of the base (registered or
verified against one) and its latest verification against the new revision did not pass (or
there is none). Merged artifacts built on an earlier revision are listed when no artifact of the
same version and dtype exists on the new one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.catalog.convert import base_label
from registry.enums import ACTIVE_STATES
from registry.gates import latest_verdicts
from registry.release import types as RT

V = M.AdapterVersion
# The predicate of ix_jobs_unique_active, word for word, so that ON CONFLICT can infer the index.
_ACTIVE_PREDICATE = "state IN ('queued', 'running')"


def enqueue_verify(s: Session, *, ref: str, base: M.BaseModelRow, digest: str, actor: str) -> int:
    """Queue a verify job in the caller's transaction (so a bulk re-verify is all or nothing).

    The same row, payload and unique key as registry.jobs (JobsAPI.verify with the default dtype),
    whose enqueue opens its own transaction and so cannot join ours. The partial unique index on
    unique_key makes a second enqueue of the same (version, base) while one is queued or running,
    from here or from `jobs.verify`, return the existing job instead.
    """
    key = f"verify:{digest}:{base.fingerprint}:default"
    now = M.utcnow()
    payload = {"ref": ref, "requested": ref, "base": f"{base.name}@{base.fingerprint}", "dtype": None}
    values: dict[str, Any] = dict(kind="verify", payload=payload, state="queued",
                                  priority=0, attempt=0, max_attempts=3, run_after=now, unique_key=key,
                                  created_at=now, created_by=actor, errors=[], cancel_requested=False)
    ins = (postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert)(M.Job)
    new_id = s.scalar(ins.values(values).on_conflict_do_nothing(
        index_elements=["unique_key"], index_where=text(_ACTIVE_PREDICATE)).returning(M.Job.id))
    if new_id is not None:
        return int(new_id)
    return int(s.scalars(select(M.Job.id).where(M.Job.unique_key == key, M.Job.state.in_(ACTIVE_STATES))).one())


def impact(s: Session, base: str, *, include_deprecated: bool = False, enqueue: bool = False,
           actor: str = "") -> RT.ImpactReport:
    new = Q.get_base(s, base)
    revs = {b.id: b for b in s.scalars(select(M.BaseModelRow).where(M.BaseModelRow.name == new.name))}
    old_ids = [i for i in revs if i != new.id]
    empty = RT.ImpactReport(convert.base_ref(new), tuple(convert.base_ref(revs[i]) for i in old_ids), (), (), ())
    if not old_ids:
        return empty
    verified_old = select(M.Verification.version_id).where(M.Verification.base_model_id.in_(old_ids))
    q = (select(V, M.Adapter.name).join(M.Adapter, M.Adapter.id == V.adapter_id)
         .where(or_(V.base_model_id.in_(old_ids), V.id.in_(verified_old))).order_by(M.Adapter.name, V.version))
    if not include_deprecated:
        q = q.where(V.deprecated.is_(False))
    rows = list(s.execute(q).all())
    verdicts = latest_verdicts(s, [r.id for r, _ in rows])
    aliases: dict[int, list[str]] = defaultdict(list)
    if rows:
        for vid, al in s.execute(select(M.Alias.version_id, M.Alias.alias)
                                 .where(M.Alias.version_id.in_([r.id for r, _ in rows])).order_by(M.Alias.alias)):
            aliases[vid].append(al)
    versions, alias_refs, jobs = [], [], []
    for row, name in rows:
        v = verdicts.get(row.id, {})
        if v.get(new.id):
            continue
        against = tuple(base_label(revs[b]) for b in old_ids if v.get(b))
        if new.id in v:
            reason = f"its latest verification against {base_label(new)} failed"
        elif against:
            reason = f"verified against {', '.join(against)} only"
        else:
            own = revs.get(row.base_model_id) if row.base_model_id is not None else None
            reason = f"registered against {base_label(own) if own else 'another base'}, never verified"
        ref = f"{name}@{row.version}"
        versions.append(RT.ImpactedVersion(ref, row.content_digest, convert.base_ref(row.base_model), against,
                                           tuple(aliases[row.id]), reason))
        alias_refs += [f"{name}@{a}={row.version}" for a in aliases[row.id]]
        if enqueue:
            jobs.append(enqueue_verify(s, ref=ref, base=new, digest=row.content_digest, actor=actor))
    merged = _stale_merges(s, new, old_ids, revs)
    return RT.ImpactReport(empty.base, empty.previous, tuple(versions), tuple(alias_refs), tuple(merged),
                           tuple(j for j in jobs if j is not None))


def _stale_merges(s: Session, new: M.BaseModelRow, old_ids: list[int], revs) -> list[RT.ImpactedMerge]:
    MA = M.MergedArtifact
    on_new = set(s.execute(select(MA.version_id, MA.dtype).where(MA.base_model_id == new.id)).all())
    q = (select(MA, V.version, M.Adapter.name).join(V, V.id == MA.version_id)
         .join(M.Adapter, M.Adapter.id == V.adapter_id).where(MA.base_model_id.in_(old_ids)).order_by(MA.id))
    return [RT.ImpactedMerge(m.id, f"{name}@{ver}", convert.base_ref(revs[m.base_model_id]), m.dtype,
                             m.manifest_digest)
            for m, ver, name in s.execute(q).all() if (m.version_id, m.dtype) not in on_new]
