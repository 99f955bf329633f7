"""`check PATH --base BASE`: a folder checked against a registered base before any push (the checks
only that base shows, and the static compatibility push would record); nothing is registered."""

import json

from tests.factories import run_cli


def _run(tmp_path, *args):
    return run_cli(*args, env={"ADAPTER_REGISTRY_HOME": str(tmp_path / "home")})


def test_a_folder_that_fits_the_base_is_ok_and_shows_its_compatibility(tmp_path, tiny_llama, tiny_adapter):
    assert _run(tmp_path, "base", "add", tiny_llama, "--name", "tiny-llama").returncode == 0
    p = _run(tmp_path, "check", tiny_adapter, "--base", "tiny-llama", "--json")
    out = json.loads(p.stdout)
    assert p.returncode == 0 and out["status"] == "ok" and out["compat"]["status"] == "ok"
    assert out["compat"]["base"]["name"] == "tiny-llama"
    assert json.loads(_run(tmp_path, "ls", "--json").stdout)["items"] == []  # nothing registered


def test_a_folder_for_another_architecture_is_refused_against_that_base(tmp_path, tiny_gpt2, tiny_adapter):
    assert _run(tmp_path, "base", "add", tiny_gpt2, "--name", "tiny-gpt2").returncode == 0
    alone = _run(tmp_path, "check", tiny_adapter)
    against = _run(tmp_path, "check", tiny_adapter, "--base", "tiny-gpt2")
    assert alone.returncode == 0  # the folder itself is fine
    assert against.returncode == 2 and "refused" in against.stdout, against.stdout


def test_an_unknown_base_is_a_not_found_error(tmp_path, tiny_adapter):
    p = _run(tmp_path, "check", tiny_adapter, "--base", "nope")
    assert p.returncode == 3 and "nope" in p.stderr
