"""Deprecation (with an optional successor) and guarded deletion of versions, in the caller's transaction."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from registry.catalog import commands as C
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.errors import Conflict, InvalidInput, PolicyViolation
from registry.refs import parse_ref
from registry.release import aliases as A
from registry.release import types as RT

V = M.AdapterVersion


def deprecate(s: Session, ref: str, *, successor: str | None, reason: str | None, actor: str) -> tuple[str, V]:
    """Mark a version deprecated; search hides it and resolve warns. Returns (NAME@N, row)."""
    adapter, row = Q.get_version(s, parse_ref(ref))
    succ = None
    if successor:
        sa, succ = Q.get_version(s, parse_ref(successor))
        if succ.id == row.id:
            raise InvalidInput(f"{ref} cannot be its own successor")
        if succ.deprecated:
            raise InvalidInput(f"successor {sa.name}@{succ.version} is deprecated itself",
                               hint="name a version that is not deprecated")
    C.set_deprecated(s, row, True)
    row.deprecation_reason = reason
    if succ is not None:
        row.successor_id = succ.id
    label = f"{adapter.name}@{row.version}"
    C.record(s, actor, "version.deprecate", label,
             {"reason": reason, "successor": f"{sa.name}@{succ.version}" if succ is not None else None})
    return label, row


def undeprecate(s: Session, ref: str, *, actor: str) -> tuple[str, V]:
    adapter, row = Q.get_version(s, parse_ref(ref))
    C.set_deprecated(s, row, False)
    row.deprecation_reason, row.successor_id = None, None
    label = f"{adapter.name}@{row.version}"
    C.record(s, actor, "version.undeprecate", label, {})
    return label, row


def delete_version(s: Session, ref: str, *, force: bool, actor: str) -> RT.DeleteResult:
    """Delete a version from the catalog (its blobs stay until `gc`).

    Raises:
        PolicyViolation: it holds a protected alias (always: move the alias first)
        Conflict: merged artifacts or publications reference it and `force` is not set
    """
    r = parse_ref(ref)
    adapter = A.lock_adapter(s, r.name)  # no alias may move onto it while it goes
    _a, row = Q.get_version(s, r)
    label = f"{adapter.name}@{row.version}"
    held = list(s.scalars(select(M.Alias).where(M.Alias.version_id == row.id)))
    protected = [a.alias for a in held if s.get(M.AliasPolicy, (adapter.id, a.alias)) is not None]
    if protected:
        raise PolicyViolation(f"{label} holds protected alias {', '.join(protected)} and cannot be deleted",
                              violations=[f"{label} holds protected alias {a}" for a in protected],
                              ref=label, hint=f"move {adapter.name}@{protected[0]} to another version first")
    n_merged = s.scalar(select(func.count()).select_from(M.MergedArtifact).where(M.MergedArtifact.version_id == row.id))
    n_pubs = s.scalar(select(func.count()).select_from(M.Publication).where(M.Publication.version_id == row.id))
    if (n_merged or n_pubs) and not force:
        raise Conflict(f"{label} is referenced by {n_merged} merged artifact(s) and {n_pubs} publication(s)",
                       ref=label, hint="pass --force to delete them from the catalog too")
    removed = []
    for al in held:
        A.move(s, adapter, al.alias, None, actor=actor, reason=f"{label} deleted", force=False)
        removed.append(al.alias)
    s.execute(update(V).where(V.successor_id == row.id).values(successor_id=None))
    digest = row.content_digest
    s.flush()
    # Core DELETE so that the database's ON DELETE CASCADE removes files, tags, metrics, evals,
    # verifications, merged artifacts and publications in one statement.
    s.execute(delete(V).where(V.id == row.id))
    s.expunge(row)
    C.record(s, actor, "version.delete", label, {"digest": digest, "forced": force, "aliases": removed,
                                                  "merged": n_merged, "publications": n_pubs})
    return RT.DeleteResult(label, digest, tuple(removed), n_merged or 0, n_pubs or 0, force)
