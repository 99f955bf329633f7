"""Fixtures for the artifact store: a real S3 API (moto) on loopback, real folders, a real tmpfs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from registry.storage import LocalBlobStore, open_store

PREFIX = "team/registry"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def s3_store(bucket, s3_endpoint):
    return open_store(f"s3://{bucket}/{PREFIX}", s3_endpoint=s3_endpoint)


@pytest.fixture
def local_store(tmp_path):
    return open_store(str(tmp_path / "store"))


@pytest.fixture(params=["local", "s3"])
def store(request):
    """Each behaviour every backend must share runs against both."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def tmpfs(tmp_path):
    """A real 2 MiB tmpfs, to fill a filesystem for real."""
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root/CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def _write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _corrupt(store, digest: str, *, offset: int = 0) -> None:
    """Flip one stored byte behind the store's back (bit rot, a bad disk, a hand edit)."""
    if isinstance(store, LocalBlobStore):
        path = store.path(digest)
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0xFF]))
        return
    key = store.key(digest)
    data = bytearray(store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    data[offset] ^= 0xFF
    store.client.put_object(Bucket=store.bucket, Key=key, Body=bytes(data))


def _stored_names(store) -> list[str]:
    """Every object/file the store holds, including anything half-written."""
    if isinstance(store, LocalBlobStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


# The child process: put the same file, wait for "go" on stdin so both start together, report.
CHILD = """
import json, sys
from registry.storage import open_store
store = open_store(sys.argv[1], s3_endpoint=sys.argv[3] or None)
print("ready", flush=True)
sys.stdin.readline()
info = store.put_file(sys.argv[2])
print(json.dumps({"digest": info.digest, "size": info.size, "created": info.created}), flush=True)
"""


def _put_from_two_processes(url: str, path: Path, endpoint: str = "") -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(path), endpoint],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# Helpers are handed out as fixtures: importing from a conftest module is ambiguous once the
# suite has more than one conftest.py.


@pytest.fixture
def write_file():
    return _write_file


@pytest.fixture
def corrupt():
    return _corrupt


@pytest.fixture
def stored_names():
    return _stored_names


@pytest.fixture
def put_from_two_processes():
    return _put_from_two_processes
