"""The events outbox and webhooks: order, follow, signatures, retries (a real HTTP server on loopback)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from registry.app import Registry
from registry.release.events import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, backoff, verify_signature


@pytest.fixture
def bot(rel, tiny_llama, adapters):
    rel.add_base(tiny_llama, name="llama")
    rel.push(adapters[0], name="bot", base="llama")
    rel.push(adapters[1], name="bot", base="llama")
    return rel


def test_every_catalog_change_appends_an_event_in_order(bot):
    bot.release.set_alias("bot", "production", 1)
    bot.release.protect_alias("bot", "production")
    bot.release.deprecate("bot@2", reason="old")
    kinds = [e.kind for e in bot.release.events()]
    assert kinds == ["base.add", "version.create", "version.create", "alias.set", "alias.protect",
                     "version.deprecate"]
    ids = [e.id for e in bot.release.events()]
    assert ids == sorted(ids)
    assert [e.kind for e in bot.release.events(after_id=ids[2], limit=2)] == ["alias.set", "alias.protect"]
    assert [e.subject for e in bot.release.events(kinds=["alias."])] == ["bot@production", "bot@production"]
    assert bot.release.events(kinds=["version.deprecate"])[0].payload["reason"] == "old"


def test_follow_yields_events_as_they_are_appended(bot):
    seen = []
    stream = bot.release.follow_events(kinds=["alias."], poll_s=0.01, stop=lambda: len(seen) >= 2)
    bot.release.set_alias("bot", "canary", 1)
    seen.append(next(stream))
    bot.release.set_alias("bot", "canary", 2)
    seen.append(next(stream))
    assert [(e.payload["from"], e.payload["to"]) for e in seen] == [(None, 1), (1, 2)]
    assert list(stream) == []  # stop() now true: the generator ends


def test_reading_events_on_postgres_waits_for_an_open_writer_so_no_id_is_skipped(migrated_pg_url, settings_for):
    from registry.catalog import commands as C

    a, b, reader = (Registry(settings_for(migrated_pg_url)) for _ in range(3))
    inserted, release = threading.Event(), threading.Event()

    def slow_writer():
        with a.db.write() as s:
            C.record(s, "t", "test.slow", "x")
            s.flush()  # holds the smaller id, uncommitted
            inserted.set()
            release.wait(10)

    t = threading.Thread(target=slow_writer)
    t.start()
    assert inserted.wait(10)
    with b.db.write() as s:  # a later id, committed first
        C.record(s, "t", "test.fast", "y")
    got: list = []
    r = threading.Thread(target=lambda: got.extend(reader.release.events()))
    r.start()
    time.sleep(0.3)
    assert not got and r.is_alive()  # the reader waits instead of returning the later id alone
    release.set()
    t.join(10)
    r.join(10)
    assert [e.kind for e in got] == ["test.slow", "test.fast"]
    for reg in (a, b, reader):
        reg.close()


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records requests and fails the first `fail` of them."""

    def __init__(self, fail: int = 0):
        self.fail = fail
        self.requests: list[tuple[dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                code = 500 if outer.fail > 0 else 204
                outer.fail -= 1
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_webhook_receives_every_event_once_in_order_signed_with_hmac_sha256(sqlite_rel, tiny_llama, adapters,
                                                                           receiver):
    hook = sqlite_rel.release.add_webhook(receiver.url, secret="s3cret")
    assert hook.secret == "s3cret" and sqlite_rel.release.webhooks()[0].secret is None
    sqlite_rel.add_base(tiny_llama, name="llama")
    sqlite_rel.push(adapters[0], name="bot", base="llama")
    sqlite_rel.release.set_alias("bot", "production", 1)
    [d] = sqlite_rel.release.deliver_webhooks()
    assert d.error is None and d.delivered == 4
    kinds = []
    for headers, body in receiver.requests:
        assert verify_signature("s3cret", body, headers[SIGNATURE_HEADER])
        assert not verify_signature("other", body, headers[SIGNATURE_HEADER])
        doc = json.loads(body)
        assert headers[EVENT_HEADER] == doc["kind"] and headers[DELIVERY_HEADER] == str(doc["id"])
        kinds.append(doc["kind"])
    assert kinds == ["webhook.add", "base.add", "version.create", "alias.set"]
    assert sqlite_rel.release.deliver_webhooks()[0].delivered == 0  # nothing new: nothing sent again
    assert len(receiver.requests) == 4


def test_webhook_delivery_is_retried_after_server_errors(sqlite_rel, tiny_llama, receiver):
    sqlite_rel.release.add_webhook(receiver.url, secret="k", kinds=["base.add"])
    sqlite_rel.add_base(tiny_llama, name="llama")
    receiver.fail = 2
    [d] = sqlite_rel.release.deliver_webhooks(max_attempts=3, backoff_s=0)
    assert d.error is None and d.delivered == 1 and d.attempts == 3
    assert len({b for _, b in receiver.requests}) == 1  # the same event three times


def test_failed_delivery_stops_at_that_event_and_resumes_there_later(sqlite_rel, tiny_llama, adapters, receiver):
    sqlite_rel.release.add_webhook(receiver.url, secret="k", kinds=["version."])
    sqlite_rel.add_base(tiny_llama, name="llama")
    sqlite_rel.push(adapters[0], name="bot", base="llama")
    sqlite_rel.push(adapters[1], name="bot", base="llama")
    receiver.fail = 2
    [d] = sqlite_rel.release.deliver_webhooks(max_attempts=2, backoff_s=0)
    assert d.delivered == 0 and "HTTP 500" in d.error
    w = sqlite_rel.release.webhooks()[0]
    assert w.failures == 1 and w.last_error == d.error
    [d2] = sqlite_rel.release.deliver_webhooks(max_attempts=2, backoff_s=0)
    assert d2.error is None and d2.delivered == 2 and sqlite_rel.release.webhooks()[0].failures == 0
    delivered = [json.loads(b)["subject"] for _, b in receiver.requests[2:]]
    assert delivered == ["bot@1", "bot@2"]  # base.add was filtered out by kinds


def test_webhook_added_from_now_skips_earlier_events_and_an_unreachable_url_is_reported(sqlite_rel, tiny_llama):
    sqlite_rel.add_base(tiny_llama, name="llama")
    first = sqlite_rel.release.events()[-1].id
    hook = sqlite_rel.release.add_webhook("http://127.0.0.1:9/nothing", secret="k")
    assert hook.last_event_id == first
    [d] = sqlite_rel.release.deliver_webhooks(max_attempts=1, timeout=1)
    assert d.delivered == 0 and d.last_event_id == first and "Connect" in d.error


def test_backoff_doubles_and_is_capped():
    assert [backoff(i, base_s=1, cap_s=5) for i in range(1, 6)] == [1, 2, 4, 5, 5]
