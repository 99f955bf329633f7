"""`Registry.release`: release management (aliases, gates, deprecation, impact, bulk operations,
serving profiles, gc, events and webhooks) over one Core.

Every write runs in one transaction and appends its events there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import select

from registry import types as T
from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.core import Core
from registry.errors import BaseModelNotFound, Rollback
from registry.refs import check_alias
from registry.release import aliases as A
from registry.release import bulk as B
from registry.release import deprecate as D
from registry.release import events as E
from registry.release import gc as G
from registry.release import impact as IM
from registry.release import serving as S
from registry.release import types as RT
from registry.release.policy import PolicySpec, evaluate
from registry.tokens import read_prefix
from registry.workflows.resolve import adapter_folder, base_folder

V = M.AdapterVersion


class Release:
    """Release management; `reg.release` (and `Client.release` over HTTP)."""

    def __init__(self, core: Core):
        self.core = core

    @property
    def db(self):
        return self.core.db

    @property
    def actor(self) -> str:
        return self.core.actor

    # -- aliases -------------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int | str, *, reason: str | None = None,
                  force: bool = False) -> RT.AliasChange:
        """Point NAME@ALIAS at a version (a number, 'v3', another alias or 'latest'); recorded in history.

        Raises:
            PolicyViolation: the alias is protected and the version fails a gate; nothing changed.
                `force=True` (admin) moves it anyway and records the move as overridden.
        """
        check_alias(alias)
        with self.db.write() as s:
            adapter = A.lock_adapter(s, name)
            target = A.resolve_target(s, adapter, version)
            return A.move(s, adapter, alias, target, actor=self.actor, reason=reason, force=force)

    def remove_alias(self, name: str, alias: str, *, reason: str | None = None, force: bool = False
                     ) -> RT.AliasChange:
        """Remove an alias (a protected one only with force); recorded in history."""
        check_alias(alias)
        with self.db.write() as s:
            adapter = A.lock_adapter(s, name)
            return A.move(s, adapter, alias, None, actor=self.actor, reason=reason, force=force)

    def alias_history(self, name: str, alias: str | None = None, *, limit: int | None = None) -> list[RT.AliasMove]:
        """Every move of an adapter's aliases (from, to, who, when, why, overridden), oldest first."""
        with self.db.read() as s:
            return A.history(s, name, alias, limit=limit)

    def aliases(self, name: str | None = None) -> list[RT.AliasInfo]:
        """The aliases of one adapter (or of all), with protected ones evaluated against their policy."""
        with self.db.read() as s:
            return A.list_aliases(s, name)

    def protect_alias(self, name: str, alias: str, *, require_verified: bool = False,
                      require_metrics: Iterable[str] = (),
                      require_verified_engines: Iterable[str] = ()) -> RT.AliasPolicy:
        """Protect an alias with promotion gates (replacing any earlier policy of it).

        Args:
            require_verified_engines: serving engines ("vllm", "llama.cpp") each version must also
                pass `verify --engine` on, against its base ("peft" is require_verified)
        """
        spec = PolicySpec.parse(require_verified=require_verified, require_metrics=require_metrics,
                                require_verified_engines=require_verified_engines)
        with self.db.write() as s:
            adapter = A.lock_adapter(s, name)
            return A.policy_info(s, adapter, A.protect(s, adapter, alias, spec, actor=self.actor))

    def unprotect_alias(self, name: str, alias: str) -> bool:
        """Drop an alias's policy (admin). Returns False when it was not protected."""
        with self.db.write() as s:
            return A.unprotect(s, A.lock_adapter(s, name), alias, actor=self.actor)

    def alias_policy(self, name: str, alias: str) -> RT.AliasPolicy | None:
        with self.db.read() as s:
            adapter = Q.get_adapter(s, name)
            p = s.get(M.AliasPolicy, (adapter.id, check_alias(alias)))
            return A.policy_info(s, adapter, p) if p is not None else None

    def check_promotion(self, name: str, alias: str, version: int | str) -> RT.PolicyResult:
        """Evaluate a would-be move without making it."""
        with self.db.read() as s:
            adapter = Q.get_adapter(s, name)
            target = A.resolve_target(s, adapter, version)
            spec = A.policy_spec(s.get(M.AliasPolicy, (adapter.id, check_alias(alias))))
            return evaluate(alias, spec, A.facts(s, adapter.name, target, spec))

    # -- deprecation and deletion -------------------------------------------------------------
    def deprecate(self, ref: str, *, successor: str | None = None, reason: str | None = None) -> T.AdapterVersion:
        """Deprecate a version: search hides it (unless asked) and resolve warns, naming the successor."""
        with self.db.write() as s:
            _label, row = D.deprecate(s, ref, successor=successor, reason=reason, actor=self.actor)
            s.flush()
            return Q.hydrate(s, [row])[0]

    def undeprecate(self, ref: str) -> T.AdapterVersion:
        with self.db.write() as s:
            _label, row = D.undeprecate(s, ref, actor=self.actor)
            s.flush()
            return Q.hydrate(s, [row])[0]

    def delete_version(self, ref: str, *, force: bool = False) -> RT.DeleteResult:
        """Delete a version from the catalog (blobs go with the next gc).

        Raises:
            PolicyViolation: it holds a protected alias (move the alias first; force does not help)
            Conflict: merged artifacts or publications reference it and force is not set
        """
        with self.db.write() as s:
            return D.delete_version(s, ref, force=force, actor=self.actor)

    # -- base revisions ------------------------------------------------------------------------
    def impact(self, base: str, *, enqueue: bool = False, include_deprecated: bool = False) -> RT.ImpactReport:
        """Versions, aliases and merged artifacts of earlier revisions not verified against `base`
        (NAME: its newest revision, or NAME@REV); with enqueue, queue a verify job for each."""
        with (self.db.write() if enqueue else self.db.read()) as s:
            return IM.impact(s, base, include_deprecated=include_deprecated, enqueue=enqueue, actor=self.actor)

    # -- bulk ------------------------------------------------------------------------------------
    def _bulk(self, operation: str, query: Mapping[str, Any], dry_run: bool,
              fn: Callable[[Any, list], tuple[list, list]]) -> RT.BulkResult:
        try:
            with self.db.write() as s:
                items = B.matching(s, query)
                done, jobs = fn(s, items)
                res = RT.BulkResult(operation, dict(query), len(items), tuple(done), dry_run, tuple(jobs))
                if dry_run:
                    raise Rollback(res)
                return res
        except Rollback as r:
            return r.result

    def bulk_tag(self, query: Mapping[str, Any], *, tags: Mapping[str, str] | Iterable[str] = (),
                 remove: Iterable[str] = (), dry_run: bool = False) -> RT.BulkResult:
        """Set (and remove) tags on every version the query matches, all or nothing.

        `query` takes the filters of `search` (base, name, tags, metrics, min_rank, ...).
        """
        from registry.refs import parse_tag

        tags = dict(tags) if isinstance(tags, Mapping) else dict(parse_tag(t) for t in tags)
        return self._bulk("tag", query, dry_run,
                          lambda s, items: (B.tag(s, items, tags=tags, remove=remove, actor=self.actor), []))

    def bulk_deprecate(self, query: Mapping[str, Any], *, reason: str | None = None,
                       dry_run: bool = False) -> RT.BulkResult:
        return self._bulk("deprecate", query, dry_run,
                          lambda s, items: (B.deprecate(s, items, reason=reason, actor=self.actor), []))

    def bulk_reverify(self, query: Mapping[str, Any], *, base: str | None = None,
                      dry_run: bool = False) -> RT.BulkResult:
        """Queue a verify job for every matched version (against its own base, or `base`)."""
        return self._bulk("reverify", query, dry_run,
                          lambda s, items: B.reverify(s, items, base=base, actor=self.actor))

    def bulk_promote(self, query: Mapping[str, Any], *, alias: str = "production", select: str = "latest-verified",
                     reason: str | None = None, force: bool = False, dry_run: bool = False) -> RT.BulkResult:
        """Move `alias` of every matched adapter to its latest (verified) matched version.

        Raises:
            PolicyViolation: any move breaks its alias's policy; the error lists them all and
                nothing changed
        """
        check_alias(alias)
        return self._bulk("promote", query, dry_run,
                          lambda s, items: (B.promote(s, items, alias=alias, select_=select, reason=reason,
                                                      force=force, actor=self.actor), []))

    # -- serving ---------------------------------------------------------------------------------
    def serving_profile(self, base: str, *, alias: str = "production", max_loras: int | None = None
                        ) -> RT.ServingProfile:
        """What `vllm serve` needs to serve every adapter of `base` that has `alias`, together."""
        check_alias(alias)
        with self.db.read() as s:
            b = Q.get_base(s, base)
            revs = {r.id: r for r in s.scalars(select(M.BaseModelRow).where(M.BaseModelRow.name == b.name))}
            q = (select(V, M.Adapter.name).join(M.Alias, M.Alias.version_id == V.id)
                 .join(M.Adapter, M.Adapter.id == V.adapter_id)
                 .where(M.Alias.alias == alias, V.base_model_id.in_(list(revs))).order_by(M.Adapter.name))
            label = convert.base_label
            found = [(name, row.version, row, None if row.base_model_id == b.id else
                      f"registered against {label(revs[row.base_model_id])}, served on {label(b)}")
                     for row, name in s.execute(q).all()]
            base_ref, base_text, location = convert.base_ref(b), A.base_ref_text(b), b.location
        extra = []
        try:
            base_path = str(base_folder(self.core, base_text))
        except BaseModelNotFound:
            base_path = location
            extra.append(f"the base model is not at {location} and its weights are not stored")
        cands = []
        for name, version, row, note in found:  # deprecation is reported as a profile warning instead
            cands.append(S.Candidate(
                name=name, ref=f"{name}@{version}", rank=row.rank,
                path=str(adapter_folder(self.core, f"{name}@{version}", warn=False)),
                target_modules=tuple(row.target_modules or ()), rank_pattern=dict(row.rank_pattern or {}),
                adapter_dtype=row.adapter_dtype, peft_type=row.peft_type, use_dora=row.use_dora,
                modules_to_save=tuple(row.modules_to_save or ()), deprecated=row.deprecated, note=note))
        prof = S.build_profile(base_ref, base_path, alias, cands, max_loras=max_loras)
        if extra:
            import dataclasses

            prof = dataclasses.replace(prof, warnings=(*prof.warnings, *extra))
        return prof

    # -- gc --------------------------------------------------------------------------------------
    def gc(self, *, dry_run: bool = False, grace_seconds: float = G.GRACE_SECONDS) -> RT.GcReport:
        """Delete blobs nothing references and that are older than the grace period (see release.gc)."""
        return G.collect(self.db, self.core.store, dry_run=dry_run, grace_seconds=grace_seconds, actor=self.actor,
                         home=self.core.settings.home, temp_max_age_s=self.core.settings.temp_max_age_s)

    # -- events and webhooks ---------------------------------------------------------------------
    def events(self, after_id: int = 0, limit: int = 100, *, kinds: Iterable[str] = ()) -> list[T.EventInfo]:
        """Catalog events with id > after_id, oldest first ('alias.' in kinds selects a family).

        The local operator and an unrestricted admin token read every event; any other HTTP caller
        reads the public catalog events without names, URLs, secrets or paths, and with closed
        reads a namespaced token only those about its names (release.events, View).
        """
        kinds = tuple(kinds)
        view = E.View() if self.core.is_operator else E.View.public(read_prefix(self.core))
        with self.db.read() as s:
            return E.read(s, after_id=after_id, limit=limit, kinds=kinds, view=view)

    def follow_events(self, after_id: int = 0, *, kinds: Iterable[str] = (), poll_s: float = 1.0,
                      stop: Callable[[], bool] = lambda: False) -> Iterator[T.EventInfo]:
        """Yield events as they are appended (until `stop()` is true)."""
        kinds = tuple(kinds)
        return E.follow(lambda last: self.events(last, 500, kinds=kinds), after_id=after_id, poll_s=poll_s,
                        stop=stop)

    def add_webhook(self, url: str, *, secret: str | None = None, kinds: Iterable[str] = (),
                    from_now: bool = True) -> RT.WebhookInfo:
        """Register a webhook (the secret is generated when not given, and returned only here)."""
        with self.db.write() as s:
            return E.add_webhook(s, url, secret=secret, kinds=tuple(kinds), from_now=from_now, actor=self.actor)

    def webhooks(self) -> list[RT.WebhookInfo]:
        with self.db.read() as s:
            return [E.webhook_info(w) for w in s.scalars(select(M.Webhook).order_by(M.Webhook.id))]

    def remove_webhook(self, webhook_id: int) -> None:
        with self.db.write() as s:
            w = E.get_webhook(s, webhook_id)
            s.delete(w)
            from registry.catalog import commands as C

            C.record(s, self.actor, "webhook.remove", w.url, {"id": webhook_id})

    def deliver_webhooks(self, *, max_attempts: int = 3, timeout: float = 5.0, backoff_s: float = 0.5
                         ) -> list[RT.Delivery]:
        """POST pending events to every active webhook, signed and retried (see release.events)."""
        return E.deliver(self.db, max_attempts=max_attempts, timeout=timeout, backoff_s=backoff_s)
