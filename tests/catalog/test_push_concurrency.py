"""Two processes pushing at once get race-free versions (SQLite + PostgreSQL)."""

import multiprocessing as mp
import shutil

import pytest


def _push(args):
    db, home, store, folder, name, barrier = args
    from registry.app import Registry
    from registry.settings import Settings

    reg = Registry(Settings.from_env(env={}, db=db, home=home, store=store, actor="proc"))
    barrier.wait(timeout=180)
    v = reg.push(folder, name=name)
    reg.close()
    return v.version, v.created, v.content_digest


def _run(n, db, tmp_path, folders, name):
    from registry import migrate
    from registry.db import make_engine

    eng = make_engine(db)
    migrate.upgrade(eng)
    eng.dispose()
    ctx = mp.get_context("spawn")
    with ctx.Manager() as m:
        barrier = m.Barrier(n)
        with ctx.Pool(n) as pool:
            return pool.map(_push, [(db, str(tmp_path / "h"), str(tmp_path / "s"), str(f), name, barrier)
                                    for f in folders])


@pytest.mark.slow
def test_concurrent_pushes_of_different_content_get_different_versions(db_url, tmp_path, tiny_adapter):
    folders = []
    for i in range(4):
        d = shutil.copytree(tiny_adapter, tmp_path / f"a{i}")
        (d / "README.md").write_text(f"variant {i}")
        folders.append(d)
    out = _run(4, db_url, tmp_path, folders, "racer")
    assert sorted(v for v, _c, _d in out) == [1, 2, 3, 4]
    assert all(c for _v, c, _d in out)


@pytest.mark.slow
def test_concurrent_pushes_of_same_content_get_the_same_version(db_url, tmp_path, tiny_adapter):
    out = _run(3, db_url, tmp_path, [tiny_adapter] * 3, "same")
    assert {v for v, _c, _d in out} == {1}
    assert sum(c for _v, c, _d in out) == 1
