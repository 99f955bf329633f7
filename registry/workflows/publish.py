"""Publish a version's merged model to a folder, an S3 prefix or a Hugging Face Hub repo.

The same gate decides twice: `precheck` when the job is asked for (so the API refuses at once)
and `run` inside the job, before it merges what it is about to ship. Both ask
registry/gates.py about the same (version, base, dtype), so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from registry import dtypes, gates
from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.core import Core
from registry.errors import BaseModelNotFound, IntegrityFailure, PolicyViolation
from registry.refs import parse_ref
from registry.workflows import merge as merge_wf

Progress = Callable[..., None]


@dataclass(frozen=True)
class Target:
    """What a publish request resolved to: the version, its base and the dtype it will ship in."""

    ref: str
    version_id: int
    digest: str
    base_id: int
    base_label: str
    dtype: str


def target(core: Core, ref: str, *, dtype: str | None) -> Target:
    r = parse_ref(ref)
    with core.db.read() as s:
        adapter, row = Q.get_version(s, r)
        b = row.base_model
        if b is None:
            raise BaseModelNotFound(f"{ref} has no base model recorded",
                                    hint="record one with: adapter-registry version set-base REF BASE")
        return Target(f"{adapter.name}@{row.version}", row.id, row.content_digest, b.id, convert.base_label(b),
                      dtypes.or_default(dtype, b.dtype))


def gate(core: Core, t: Target) -> gates.Verdict:
    with core.db.read() as s:
        return gates.verdict(s, t.version_id, t.base_id, dtype=t.dtype)


def refusal(t: Target, v: gates.Verdict) -> PolicyViolation:
    return PolicyViolation(f"publishing needs a verified version: {gates.describe(t.ref, t.base_label, v)}",
                           ref=t.ref, hint=f"run: adapter-registry verify {t.ref} --dtype {t.dtype} --wait "
                                           "(or publish with --force, admin)")


def precheck(core: Core, ref: str, *, to: str, dtype: str | None, force: bool) -> Target:
    """Refuse a publish request before it is queued: a bad target, a place the caller may not
    publish to (registry/targets.py), or an unverified version.

    Raises:
        InvalidInput: the target is not understood
        Forbidden: the target is under no publish target of the version's namespace (and the
            caller is not an unrestricted admin), or inside the registry's own folders
        PolicyViolation: not verified (gates.verdict) and not `force`
    """
    from registry.publish import parse_target
    from registry.targets import Targets

    parse_target(to)
    t = target(core, ref, dtype=dtype)
    Targets(core).check_publish(t.ref.rpartition("@")[0], to)
    v = gate(core, t)
    if not v.passed and not force:
        raise refusal(t, v)
    return t


def _from_store(core: Core, publisher: Any, files: dict[str, tuple[str, int]], manifest_digest: str,
                progress: Progress | None) -> Any:
    """A publication made from the stored blobs without a local folder (an S3 prefix copied server-side
    from an S3 store on the same endpoint), or None where the publisher cannot (then a folder ships)."""
    ship = getattr(publisher, "publish_stored", None)
    return None if ship is None else ship(files, manifest_digest, store=core.store, progress=progress)


@dataclass(frozen=True)
class Outcome:
    """A finished publish: what to record (`record`) and report (`result`)."""

    result: dict[str, Any]
    merged_id: int
    version_id: int
    kind: str
    uri: str
    revision: str | None
    manifest_digest: str
    forced: bool
    actor: str

    def record(self, s: Any) -> None:
        s.add(M.Publication(merged_id=self.merged_id, version_id=self.version_id, target=self.kind, uri=self.uri,
                            revision=self.revision, manifest_digest=self.manifest_digest, forced=self.forced,
                            actor=self.actor))


def run(core: Core, ref: str, *, to: str, dtype: str | None, engine: str, device: str, force: bool,
        progress: Progress | None = None, merge_progress: merge_wf.MergeProgress | None = None) -> Outcome:
    """Check the gate (again: the catalog may have changed since the request), merge if needed, publish.

    The gate does not depend on the merge (publish merges without validation), so a refusal
    comes before any merging.
    """
    from registry.publish import open_publisher
    from registry.storage.digest import sha256_file
    from registry.targets import Targets, refuse_own_folders

    say = progress or (lambda *a, **k: None)
    publisher = open_publisher(to, settings=core.settings)  # a bad target fails before the merge
    refuse_own_folders(core.settings, to)  # again: the settings or a symlink may have changed since the request
    t = target(core, ref, dtype=dtype)
    if hasattr(publisher, "private"):  # a Hub repo: private unless the target allowing it says otherwise
        publisher.private = Targets(core).hub_private(t.ref.rpartition("@")[0], to)
    v = gate(core, t)
    if not v.passed and not force:
        raise refusal(t, v)
    say("merge")
    m = merge_wf.merge(core, t.ref, dtype=t.dtype, engine=engine, device=device, validate=False, out=None,
                       max_shard_size="5GB", progress=merge_progress, folder=False)
    files = {rel: (f["digest"], int(f["size"])) for rel, f in m.files.items()}
    say("publish")
    res = _from_store(core, publisher, files, m.manifest_digest, progress)
    if res is None:
        with merge_wf.publish_folder(core, m.id) as folder:  # every byte as recorded (the stored blobs, or the cache)
            if sha256_file(folder / "manifest.json") != m.manifest_digest:
                raise IntegrityFailure(f"the merged folder of {t.ref} does not hold its recorded manifest", ref=t.ref)
            hashed = getattr(publisher, "publish_hashed", None)  # the Hub: told each file's digest, not re-hashing
            res = (hashed(folder, files, progress=progress) if hashed is not None
                   else publisher.publish(folder, progress=progress))
    if res.manifest_digest != m.manifest_digest:  # the folder changed while it was being published
        raise IntegrityFailure(f"{res.uri} received manifest {res.manifest_digest[:12]}, not the recorded "
                               f"{m.manifest_digest[:12]} of {t.ref}", ref=t.ref, uri=res.uri)
    forced = not v.passed
    return Outcome({"ref": t.ref, "target": publisher.kind, "uri": res.uri, "revision": res.revision,
                    "manifest_digest": res.manifest_digest, "files": res.files, "merged_id": m.id,
                    "verified_by": v.evidence, "forced": forced},
                   m.id, t.version_id, publisher.kind, res.uri, res.revision, res.manifest_digest, forced, core.actor)
