"""Fixtures for the artifact store: a real S3 API (moto) on loopback, real folders, a real tmpfs."""

from __future__ import annotations

import subprocess

import pytest

from registry.storage import open_store

PREFIX = "team/registry"


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
