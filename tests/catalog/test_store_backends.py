"""The registry over S3 (moto's server on loopback) and over a full disk."""

import subprocess

import pytest
from sqlalchemy import func, select

from registry.catalog import models as M
from registry.errors import DiskFull


def test_push_resolve_and_merge_through_an_s3_store(tmp_path, bucket, s3_endpoint, tiny_llama, tiny_adapter):
    from registry.app import Registry
    from registry.settings import Settings

    reg = Registry(Settings.from_env(env={}, home=tmp_path / "h", store=f"s3://{bucket}/team", s3_endpoint=s3_endpoint))
    reg.add_base(tiny_llama, name="tiny-llama", store_weights=True)
    v = reg.push(tiny_adapter, name="bot", base="tiny-llama")
    again = reg.push(tiny_adapter, name="bot", base="tiny-llama")
    assert again.version == v.version and not again.created
    folder = reg.resolve("bot@1")
    weights = "adapter_model.safetensors"
    assert (folder / weights).read_bytes() == (tiny_adapter / weights).read_bytes()
    import boto3

    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]]
    assert all(k.startswith("team/blobs/sha256/") for k in keys)
    art = reg.merge("bot@1")
    assert (art.path / "manifest.json").is_file()
    reg.close()


def test_base_with_stored_weights_is_served_from_the_store_when_its_folder_is_gone(sqlite_registry, tiny_llama,
                                                                                  tmp_path):
    import shutil

    moved = shutil.copytree(tiny_llama, tmp_path / "base-copy")
    b = sqlite_registry.add_base(moved, name="movable", store_weights=True)
    assert b.weights_stored
    shutil.rmtree(moved)
    folder = sqlite_registry.base_folder("movable")
    assert folder != moved and (folder / "config.json").is_file()
    from registry.storage.cache import MARKER  # the seal: this registry built the folder

    assert sorted(p.name for p in folder.iterdir() if p.name != MARKER) == sorted(p.name for p in tiny_llama.iterdir())


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "tiny-disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_push_onto_a_full_disk_fails_cleanly_and_records_nothing(tmp_path, tiny_disk, tiny_adapter):
    from registry.app import Registry
    from registry.settings import Settings

    reg = Registry(Settings.from_env(env={}, home=tmp_path / "h", store=str(tiny_disk / "store")))
    with pytest.raises(DiskFull, match="no space left"):
        reg.push(tiny_adapter, name="bot")
    with reg.db.read() as s:
        assert s.scalar(select(func.count()).select_from(M.AdapterVersion)) == 0
    leftovers = [p for p in (tiny_disk / "store").rglob("*") if p.is_file()]
    assert all("blobs" in p.parts for p in leftovers)  # only complete, verified blobs; no temp files
    reg.close()
