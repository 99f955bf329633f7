"""deploy --follow without a vLLM server: which events call for a deploy, what moved, and the cursor.

The deploys themselves, against a real `vllm serve`, are tests/engines/test_vllm_serve.py.
"""

from __future__ import annotations

import socket

from registry.engines import deploy as D
from registry.workflows import deploy as deploy_wf


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_alias_events_of_the_followed_alias_call_for_a_deploy_and_fold_into_moves(
        sqlite_registry, tiny_llama, tiny_adapter, tiny_adapter2):
    reg = sqlite_registry
    reg.add_base(tiny_llama, name="llama")
    reg.push(tiny_adapter, name="bot", base="llama")
    reg.push(tiny_adapter2, name="bot", base="llama")
    reg.push(tiny_adapter, name="faq", base="llama")
    start = reg.release.events()[-1].id
    reg.release.set_alias("bot", "staging", 2)
    staging_only = reg.release.events(start)
    assert not D.due(staging_only, "production") and D.due(staging_only, "staging")

    reg.release.set_alias("bot", "production", 1)
    reg.release.set_alias("faq", "production", 1)
    reg.release.set_alias("bot", "production", 2)
    reg.release.remove_alias("faq", "production")
    events = reg.release.events(start)
    assert D.due(events, "production")
    # bot: not aliased before these events, version 2 after; faq: set and removed again, no move
    assert D.moves(events, "production") == {"bot@production": (None, 2)}

    later = reg.release.events(events[-1].id)
    reg.release.set_alias("bot", "production", 1)
    reg.release.set_alias("bot", "production", 2)
    back = reg.release.events(events[-1].id)
    assert later == [] and D.due(back, "production") and D.moves(back, "production") == {}  # moved and back


def test_a_version_deprecated_under_the_alias_calls_for_a_deploy(sqlite_registry, tiny_llama, tiny_adapter):
    reg = sqlite_registry
    reg.add_base(tiny_llama, name="llama")
    reg.push(tiny_adapter, name="bot", base="llama")
    start = reg.release.events()[-1].id
    reg.release.deprecate("bot@1", reason="superseded")
    assert D.due(reg.release.events(start), "production")


def test_follow_keeps_its_cursor_and_retries_while_the_server_cannot_be_reached(
        sqlite_registry, tiny_llama, tiny_adapter):
    reg = sqlite_registry
    reg.add_base(tiny_llama, name="llama")
    reg.push(tiny_adapter, name="bot", base="llama")
    reg.release.set_alias("bot", "production", 1)
    errors, deployed, polls = [], [], []
    last = deploy_wf.follow(reg.core, _closed_port_url(), alias="production", base="llama", after_id=0, poll_s=0,
                            on_deploy=lambda p, m, last: deployed.append(last), on_error=errors.append,
                            stop=lambda: len(errors) >= 3, sleep=polls.append)
    assert last == 0 and not deployed and len(errors) == 3  # nothing handled: resuming starts from 0 again
    assert all("cannot list the models" in str(e) for e in errors)


def test_a_recorded_verification_is_an_event_that_calls_for_a_deploy(sqlite_registry, tiny_llama, tiny_adapter):
    """A version under the alias that becomes verified (deploy serves only verified ones) is loaded
    at the next poll, not only at the next alias move (before: verifications raised no event)."""
    reg = sqlite_registry
    reg.add_base(tiny_llama, name="llama")
    reg.push(tiny_adapter, name="bot", base="llama")
    reg.release.set_alias("bot", "production", 1)
    start = reg.release.events()[-1].id
    reg.verify("bot@production")
    events = reg.release.events(start)
    verify = [e for e in events if e.kind == "version.verify"]
    assert [(e.subject, e.payload["passed"], e.payload["engine"]) for e in verify] == [("bot@1", True, "peft")]
    assert D.due(events, "production")


def test_a_dropped_connection_during_a_load_is_a_failed_deploy_that_is_retried(
        sqlite_registry, tiny_llama, tiny_adapter):
    """vLLM restarting between the listing and the load (the connection drops): follow reports a
    failed deploy and retries at the next poll (before: httpx's error escaped and ended the follower).
    The server here is a stand-in speaking /v1/models and dropping every POST, not vLLM."""
    import http.server
    import json
    import threading

    class DropsLoads(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            body = json.dumps({"data": [{"id": "llama", "root": "/x"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DropsLoads)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    reg = sqlite_registry
    reg.add_base(tiny_llama, name="llama")
    reg.push(tiny_adapter, name="bot", base="llama")
    reg.release.set_alias("bot", "production", 1)
    errors: list = []
    try:
        deploy_wf.follow(reg.core, f"http://127.0.0.1:{srv.server_port}", alias="production", base="llama",
                         require_verified=False, poll_s=0, on_error=errors.append,
                         stop=lambda: len(errors) >= 2, sleep=lambda s: None)
    finally:
        srv.shutdown()
    assert len(errors) == 2 and all("cannot load bot@production" in str(e) for e in errors), errors
