"""The events outbox: reading it in order, following it, and delivering it to webhooks.

Every catalog change appends an Event row in the transaction that makes the change
(catalog.commands.record), so an event exists if and only if its change committed.

Reading in order without gaps: ids come from a sequence and are taken at INSERT time, so on
PostgreSQL a transaction holding id 10 may commit after one holding id 11, and a follower that
already moved past 11 would never see 10. `read` therefore takes `LOCK TABLE events IN SHARE
MODE` first: it waits for every open transaction that has inserted events and keeps new inserts
out while it reads (a few milliseconds), so every id up to the largest it returns is settled.
On SQLite writers are serialised (BEGIN IMMEDIATE), so ids commit in order anyway.

Webhooks get each event as one HTTP POST, in order, at least once: the body is the event's JSON,
`X-Registry-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>`, and
`X-Registry-Delivery` is the event id (receivers drop repeats by it). A failed POST is retried
with backoff; when retries run out delivery stops at that event and resumes there next time.

Who reads what: the outbox mirrors the audit log, so the feed is filtered by who asks (`View`).
The local operator and the unrestricted admin read every event in full. Everyone else reads only
the public catalog families (PUBLIC_FAMILIES: versions, aliases, evals, merges, bases; token,
webhook and gc events, and any kind added later, are admin-only), with payloads stripped of who
acted (token names), webhook URLs, secrets and server paths; with closed reads a namespaced token
reads only the events about its names. The filters are SQL, so a page is never cut short by
hidden events and `after` paging reaches the end.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from registry import types as T
from registry.catalog import commands as C
from registry.catalog import models as M
from registry.errors import InvalidInput, NotFound
from registry.release import types as RT

SIGNATURE_HEADER = "X-Registry-Signature"
EVENT_HEADER = "X-Registry-Event"
DELIVERY_HEADER = "X-Registry-Delivery"


def event_info(e: M.Event) -> T.EventInfo:
    return T.EventInfo(e.id, e.at, e.kind, e.subject, dict(e.payload or {}))


def matches(kind: str, kinds: Iterable[str]) -> bool:
    """Whether an event kind is selected: no filter selects all; 'alias.' selects a family."""
    kinds = list(kinds)
    return not kinds or any(kind == k or (k.endswith(".") and kind.startswith(k)) for k in kinds)


# The families anyone who may read the catalog may follow; every other kind is admin-only.
PUBLIC_FAMILIES = ("version.", "alias.", "eval.", "merge.", "base.")
# Payload keys never shown outside the admin feed: who acted (a token name), server paths, secrets.
PRIVATE_KEYS = frozenset({"actor", "location", "path", "url", "secret", "uri"})


@dataclass(frozen=True)
class View:
    """What one reader of the feed may see (`full` for the operator and the unrestricted admin)."""

    full: bool = True
    prefix: str | None = None  # only events whose subject starts with it ("team-a/"), literally

    @classmethod
    def public(cls, prefix: str | None = None) -> View:
        return cls(full=False, prefix=prefix)


def _kind_filter(kinds: Iterable[str]) -> ColumnElement[bool] | None:
    """SQL for `matches`: exact kinds and families ("alias.")."""
    kinds = list(kinds)
    if not kinds:
        return None
    exact = [k for k in kinds if not k.endswith(".")]
    parts: list[ColumnElement[bool]] = [M.Event.kind.in_(exact)] if exact else []
    parts += [M.Event.kind.startswith(k, autoescape=True) for k in kinds if k.endswith(".")]
    return or_(*parts)


def _public_payload(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in PRIVATE_KEYS}


def read(s: Session, *, after_id: int = 0, limit: int = 100, kinds: Iterable[str] = (),
         view: View = View()) -> list[T.EventInfo]:
    """Events with id > after_id, oldest first, with no gap behind the last one (see the docstring),
    as `view` may see them."""
    if limit < 1 or limit > 10000:
        raise InvalidInput("limit must be 1..10000")
    if s.get_bind().dialect.name == "postgresql":
        s.connection().exec_driver_sql("LOCK TABLE events IN SHARE MODE")  # held until the session ends
    q = select(M.Event).where(M.Event.id > after_id).order_by(M.Event.id).limit(limit)
    wanted = _kind_filter(kinds)
    if wanted is not None:
        q = q.where(wanted)
    if not view.full:
        q = q.where(or_(*[M.Event.kind.startswith(f, autoescape=True) for f in PUBLIC_FAMILIES]))
    if view.prefix is not None:
        q = q.where(M.Event.subject.startswith(view.prefix, autoescape=True))
    out = [event_info(e) for e in s.scalars(q)]
    if not view.full:
        out = [T.EventInfo(e.id, e.at, e.kind, e.subject, _public_payload(e.payload)) for e in out]
    return out


def follow(read_page: Callable[[int], list[T.EventInfo]], *, after_id: int = 0, poll_s: float = 1.0,
           stop: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep
           ) -> Iterator[T.EventInfo]:
    """Yield events as they are appended, forever (or until `stop()`), polling every `poll_s`."""
    last = after_id
    while not stop():
        page = read_page(last)
        for e in page:
            last = e.id
            yield e
        if not page:
            sleep(poll_s)


# -- webhooks -------------------------------------------------------------------------------------
def sign(secret: str, body: bytes) -> str:
    """The signature header value: sha256=<hex HMAC-SHA256 of the body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """For receivers: compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header or "")


def backoff(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): doubling, capped."""
    return min(cap_s, base_s * 2 ** max(0, attempt - 1))


def webhook_info(w: M.Webhook, *, secret: bool = False) -> RT.WebhookInfo:
    return RT.WebhookInfo(w.id, w.url, tuple(w.kinds or ()), w.active, w.last_event_id, w.failures, w.last_error,
                          w.last_attempt_at, w.created_at, w.secret if secret else None)


def add_webhook(s: Session, url: str, *, secret: str | None, kinds: Iterable[str], from_now: bool,
                actor: str) -> RT.WebhookInfo:
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"invalid webhook URL {url!r}", hint="give an http:// or https:// URL")
    start = (s.scalar(select(M.Event.id).order_by(M.Event.id.desc()).limit(1)) or 0) if from_now else 0
    w = M.Webhook(url=url, secret=secret or secrets.token_hex(32), kinds=list(kinds), last_event_id=start,
                  active=True, failures=0, created_by=actor)
    s.add(w)
    s.flush()
    C.record(s, actor, "webhook.add", url, {"id": w.id, "kinds": list(kinds)})
    return webhook_info(w, secret=True)


def get_webhook(s: Session, webhook_id: int) -> M.Webhook:
    w = s.get(M.Webhook, webhook_id)
    if w is None:
        raise NotFound(f"no webhook {webhook_id}", webhook_id=webhook_id)
    return w


def body_of(e: T.EventInfo) -> bytes:
    return json.dumps(e.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def post(client, url: str, secret: str, e: T.EventInfo, *, timeout: float) -> str | None:
    """One POST; None on a 2xx answer, else the error in words."""
    import httpx

    body = body_of(e)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body), EVENT_HEADER: e.kind,
               DELIVERY_HEADER: str(e.id)}
    try:
        r = client.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"{exc.__class__.__name__}: {exc}"
    return None if 200 <= r.status_code < 300 else f"HTTP {r.status_code}"


def deliver(db, *, max_attempts: int = 3, timeout: float = 5.0, backoff_s: float = 0.5, limit: int = 1000,
            sleep: Callable[[float], None] = time.sleep, now=None) -> list[RT.Delivery]:
    """POST pending events to every active webhook (up to `limit` each); see the module docstring."""
    import httpx

    if max_attempts < 1:
        raise InvalidInput("max_attempts must be at least 1")
    with db.read() as s:
        hooks = [(w.id, w.url, w.secret, list(w.kinds or ()), w.last_event_id)
                 for w in s.scalars(select(M.Webhook).where(M.Webhook.active.is_(True)).order_by(M.Webhook.id))]
    out = []
    with httpx.Client() as client:
        for wid, url, secret, kinds, last in hooks:
            with db.read() as s:
                pending = read(s, after_id=last, limit=limit)
            delivered = attempts = 0
            error = None
            for e in pending:
                if not matches(e.kind, kinds):
                    last = e.id  # not wanted: skip past it
                    continue
                for attempt in range(1, max_attempts + 1):
                    attempts += 1
                    error = post(client, url, secret, e, timeout=timeout)
                    if error is None:
                        break
                    if attempt < max_attempts:
                        sleep(backoff(attempt, base_s=backoff_s))
                if error is not None:
                    error = f"event {e.id}: {error} (after {max_attempts} attempts)"
                    break
                delivered += 1
                last = e.id
            with db.write() as s:
                w = s.get(M.Webhook, wid)
                # Never move backwards: a concurrent deliverer may have got further.
                w.last_event_id = max(w.last_event_id, last)
                w.failures = w.failures + 1 if error else 0
                w.last_error = error
                w.last_attempt_at = now or M.utcnow()
            out.append(RT.Delivery(wid, url, delivered, last, attempts, error))
    return out
