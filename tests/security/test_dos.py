"""Denial of service through the HTTP API: each crafted request is refused or finishes quickly.

Crafted rank_pattern keys, an invalid key, a zip-bomb training_args.bin, a recursive pickle,
20,000 metrics in one eval: before issue 10 these took 35 s, answered 500, inflated 300 MiB or held
the SQLite write lock for 85 s.
"""

from __future__ import annotations

import json
import pickle
import shutil
import time

import pytest

from tests.factories import adapter_files, bearer, fill_registry, make_tokens

CRAFTED_KEY = r"(\w|\.)*" * 8 + "!"  # Python's re: ~4 s per module name of the tiny Llama, 8 modules


@pytest.fixture
def api(sqlite_registry, tiny_llama, tiny_adapter, tiny_adapter2):
    from fastapi.testclient import TestClient

    from registry.api import create_app

    fill_registry(sqlite_registry, tiny_llama, tiny_adapter, tiny_adapter2)
    toks = make_tokens(sqlite_registry)
    with TestClient(create_app(sqlite_registry)) as c:
        yield sqlite_registry, c, toks


def _with_config(src, dst, **changes):
    shutil.copytree(src, dst)
    conf = json.loads((dst / "adapter_config.json").read_text())
    conf.update(changes)
    (dst / "adapter_config.json").write_text(json.dumps(conf))
    return dst


def test_a_crafted_rank_pattern_key_is_pushed_in_well_under_a_second_of_matching(api, tiny_adapter, tmp_path):
    _reg, client, toks = api
    folder = _with_config(tiny_adapter, tmp_path / "crafted", rank_pattern={CRAFTED_KEY: 4})
    t = time.perf_counter()
    r = client.post("/api/v1/adapters/team-a/crafted/versions", files=adapter_files(folder),
                    data={"base": "tiny-llama"}, headers=bearer(toks.write))
    took = time.perf_counter() - t
    assert r.status_code == 201, r.text
    assert took < 5, took  # the push itself (hashing, the static check) takes ~0.2 s here


@pytest.mark.parametrize(("key", "says"), [
    ("(q_proj", "rank_pattern key '(q_proj' is not a valid regular expression"),
    (r"(q)\1_proj", r"rank_pattern key '(q)\\1_proj' uses a backreference, which the registry does not evaluate"),
    (r"q(?=_proj)", "uses a lookaround assertion"),
])
def test_an_invalid_or_unsupported_rank_pattern_key_is_a_400_naming_the_key(api, tiny_adapter, tmp_path, key, says):
    reg, client, toks = api
    folder = _with_config(tiny_adapter, tmp_path / "bad", rank_pattern={key: 4})
    r = client.post("/api/v1/adapters/team-a/bad/versions", files=adapter_files(folder),
                    data={"base": "tiny-llama"}, headers=bearer(toks.write))
    assert r.status_code == 400, r.text
    assert says in r.json()["message"]
    assert not reg.search(name="team-a/bad").items  # nothing half-written


def _trainer_folder(adapter, out, training_args: bytes):
    from registry.testing.tiny import write_trainer_output

    folder = write_trainer_output(adapter, out, steps=(5,))
    (folder / "training_args.bin").write_bytes(training_args)
    return folder


def _zip_bomb() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("archive/data.pkl", "w") as f:
            for _ in range(300):
                f.write(b"\0" * (1 << 20))
    return buf.getvalue()


def test_a_zip_bomb_training_args_is_pushed_without_inflating_it(api, tiny_adapter, tmp_path):
    import tracemalloc

    reg, client, toks = api
    bomb = _zip_bomb()
    assert len(bomb) < 1024 * 1024
    folder = _trainer_folder(tiny_adapter, tmp_path / "bomb", bomb)
    tracemalloc.start()
    try:
        r = client.post("/api/v1/adapters/team-a/bomb/versions", files=adapter_files(folder),
                        data={"base": "tiny-llama"}, headers=bearer(toks.write))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status_code == 201, r.text
    assert peak < 64 * 1024 * 1024, peak  # 300 MiB before
    assert "args" not in reg.show("team-a/bomb").training


def test_a_recursive_pickle_training_args_is_pushed_with_no_args_instead_of_a_500(api, tiny_adapter, tmp_path):
    reg, client, toks = api
    loop: list = []
    loop.append(loop)
    folder = _trainer_folder(tiny_adapter, tmp_path / "loop", pickle.dumps({"learning_rate": loop, "seed": 7}))
    r = client.post("/api/v1/adapters/team-a/loop/versions", files=adapter_files(folder),
                    data={"base": "tiny-llama"}, headers=bearer(toks.write))
    assert r.status_code == 201, r.text
    assert reg.show("team-a/loop").training["args"]["seed"] == 7


def test_twenty_thousand_metrics_in_one_eval_are_refused_quickly(api):
    reg, client, toks = api
    metrics = {f"m{i}": 0.5 for i in range(20_000)}
    t = time.perf_counter()
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/evals", json={"metrics": metrics},
                    headers=bearer(toks.write))
    assert r.status_code in (400, 413), r.text[:300]
    assert time.perf_counter() - t < 2
    assert len(reg.show("team-a/bot@1").evals) == 1  # the one fill_registry recorded


def test_a_thousand_metrics_in_one_eval_are_recorded_quickly(api):
    reg, client, toks = api
    metrics = {f"task{i}/acc": i / 1000 for i in range(1000)}
    t = time.perf_counter()
    r = client.post("/api/v1/adapters/team-a/bot/versions/1/evals", json={"metrics": metrics, "dataset": "d"},
                    headers=bearer(toks.write))
    took = time.perf_counter() - t
    assert r.status_code in (200, 201), r.text[:300]
    assert took < 3, took  # one SELECT and one flush for all of them (was one of each per metric)
    v = reg.show("team-a/bot@1")
    assert len(v.evals) == 1001 and v.metrics["task999/acc"] == 0.999
    assert len(reg.search(metrics=["task5/acc>=0.005"], name="team-a/bot").items) == 1


def test_metrics_past_the_setting_are_a_400_naming_the_limit(sqlite_registry, tiny_llama, tiny_adapter):
    import dataclasses

    from registry.app import Registry
    from registry.errors import InvalidInput

    sqlite_registry.add_base(tiny_llama, name="tiny")
    ref = sqlite_registry.push(tiny_adapter, name="bot", base="tiny").ref
    small = Registry(core=sqlite_registry.core.with_settings(
        dataclasses.replace(sqlite_registry.settings, max_metrics_per_eval=3)))
    with pytest.raises(InvalidInput, match="at most 3 metrics"):
        small.add_eval(ref, {"a": 1, "b": 2, "c": 3, "d": 4})
    assert len(small.add_eval(ref, {"a": 1, "b": 2, "c": 3})) == 3
    with pytest.raises(InvalidInput, match="dataset"):
        small.add_eval(ref, {"a": 1}, dataset="x" * 201)


def _push_parts(client, toks, parts, name="team-a/crafted"):
    return client.post(f"/api/v1/adapters/{name}/versions", files=parts, headers=bearer(toks.write))


def _part(filename: str, data: bytes = b"x"):
    return ("files", (filename, data, "application/octet-stream"))


@pytest.mark.parametrize(("names", "says"), [
    (["a" * 256], "longer than 255 bytes"),
    (["sub/" + "é" * 128], "longer than 255 bytes"),  # 256 bytes in UTF-8, 128 characters
    (["a", "a/b"], "both a file and a folder"),
    (["a", "a/b/c"], "both a file and a folder"),
    (["a/b/c", "a/b"], "both a file and a folder"),
    (["a/b/c", "a"], "both a file and a folder"),
])
def test_crafted_upload_file_names_are_a_400_with_a_one_line_reason(api, tiny_adapter, names, says):
    reg, client, toks = api
    parts = adapter_files(tiny_adapter) + [_part(n) for n in names]
    r = _push_parts(client, toks, parts)
    assert r.status_code == 400, r.text
    msg = r.json()["message"]
    assert says in msg and "\n" not in msg
    assert list((reg.settings.home / "tmp" / "uploads").iterdir()) == []


def _raw_push(client, toks, filename: bytes, extra_header: bytes = b""):
    boundary = b"b0undary"
    body = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"files\"; filename=\"" + filename
            + b"\"\r\n" + extra_header + b"\r\nx\r\n--" + boundary + b"--\r\n")
    return client.post("/api/v1/adapters/team-a/crafted/versions", content=body,
                       headers={**bearer(toks.write), "Content-Type": "multipart/form-data; boundary=b0undary"})


def test_a_file_name_with_control_characters_is_a_400(api):
    _reg, client, toks = api
    r = _raw_push(client, toks, b"x\x01y")  # httpx would escape it; sent raw
    assert r.status_code == 400, r.text
    assert "not a safe relative file name" in r.json()["message"]


def test_an_oversized_part_header_is_a_400_not_unbounded_memory(api):
    _reg, client, toks = api
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a\"\r\n"
            f"X-Junk: {'j' * 200_000}\r\n\r\nx\r\n--{boundary}--\r\n").encode()
    r = client.post("/api/v1/adapters/team-a/crafted/versions", content=body,
                    headers={**bearer(toks.write), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 400, r.text
    assert "header" in r.json()["message"]
