"""`adapter-registry token create|ls|revoke` and `serve --help` (click's runner, in process)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import cli


def run(home, *args):
    r = CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
    return r


def test_token_create_prints_the_secret_once_ls_never_shows_it_and_revoke_stops_it(tmp_path):
    from registry.app import Registry
    from registry.settings import Settings

    home = tmp_path / "home"
    r = run(home, "token", "create", "--name", "ci", "--scope", "write", "--namespace", "team-a")
    assert r.exit_code == 0, r.output
    secret = r.stdout.strip().splitlines()[0]
    assert secret.startswith("arg_") and "not shown again" in r.stderr
    ls = run(home, "token", "ls", "--json")
    rows = json.loads(ls.stdout)
    assert [(t["name"], t["scope"], t["namespace"]) for t in rows] == [("ci", "write", "team-a")]
    assert secret not in ls.stdout and secret not in run(home, "token", "ls").stdout
    with Registry(Settings.from_env(env={}, home=home)) as reg:
        assert reg.tokens.authenticate(secret).name == "ci"
    assert run(home, "token", "revoke", "ci").exit_code == 0
    assert json.loads(run(home, "token", "ls", "--json").stdout) == []
    assert json.loads(run(home, "token", "ls", "--all", "--json").stdout)[0]["revoked_at"]
    with Registry(Settings.from_env(env={}, home=home)) as reg:
        actions = [(a.action, a.target) for a in reg.audit(limit=5)]
    assert actions[:2] == [("token.revoke", "token:ci"), ("token.create", "token:ci")]


def test_token_create_refuses_a_bad_scope_and_a_duplicate_name(tmp_path):
    home = tmp_path / "home"
    assert run(home, "token", "create", "--name", "x", "--scope", "root").exit_code == 2
    assert run(home, "token", "create", "--name", "x").exit_code == 0
    from registry.errors import AlreadyExists

    r = CliRunner().invoke(cli, ["--home", str(home), "token", "create", "--name", "x"])
    assert isinstance(r.exception, AlreadyExists)


def test_serve_and_demo_are_documented_commands():
    for cmd in (["serve", "--help"], ["demo", "--help"], ["token", "--help"]):
        r = CliRunner().invoke(cli, cmd)
        assert r.exit_code == 0 and "Usage" in r.output
    assert "--worker" in CliRunner().invoke(cli, ["serve", "--help"]).output
