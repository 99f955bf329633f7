"""publish --to hf:// ships files whose sha256 the catalog already holds: huggingface_hub does not hash them.

There is no Hub here: the Hub is the loopback stand-in of tests/publish/fakehub.py (real HTTP,
the preupload, LFS batch/upload/verify and commit endpoints huggingface_hub calls; it checks
each LFS upload's bytes against its oid). That nothing is hashed on our side is counted with a
spy around huggingface_hub's own file hasher (`lfs.sha_fileobj`, what UploadInfo calls when it
must hash a file); the control test shows the spy sees the hashing when it does happen.
"""

from __future__ import annotations

import pytest

from tests.publish.fakehub import serve


@pytest.fixture
def hub(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the stand-in speaks LFS, not Xet
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    fake, server = serve()
    yield fake
    server.shutdown()


@pytest.fixture
def hashed_files(monkeypatch):
    """The files huggingface_hub reads to hash them (a spy that calls the real hasher)."""
    from huggingface_hub import lfs

    seen: list[str] = []
    real = lfs.sha_fileobj

    def spy(fileobj, *args, **kwargs):
        seen.append(getattr(fileobj, "name", "?"))
        return real(fileobj, *args, **kwargs)

    monkeypatch.setattr(lfs, "sha_fileobj", spy)
    return seen


def test_hub_publish_commits_the_catalog_digests_without_hashing_a_file(tmp_path, hub, hashed_files,
                                                                        tiny_llama, tiny_adapter):
    from registry.app import Registry
    from registry.settings import Settings

    reg = Registry(Settings.from_env(env={}, home=tmp_path / "h", store=str(tmp_path / "store"), hf_endpoint=hub.url))
    try:
        reg.add_base(tiny_llama, name="tiny-llama")
        ref = reg.push(tiny_adapter, name="bot", base="tiny-llama").ref
        art = reg.merge(ref, max_shard_size=100_000)
        job = reg.jobs.publish(ref, to="hf://team/bot", force=True, inline=True)
        assert job.state == "succeeded", job.error
    finally:
        reg.close()
    assert hashed_files == []  # no file read for hashing on our side
    weights = {f["digest"] for rel, f in art.files.items() if rel.endswith(".safetensors")}
    assert len(weights) >= 3 and set(hub.lfs) == weights  # the LFS objects are keyed by the catalog's digests
    assert [p for _m, p in hub.requests if "/commit/" in p] == ["/api/models/team/bot/commit/main"]  # one commit
    files = hub.files_at("team/bot")
    assert set(files) == set(art.files)
    import hashlib

    assert all(hashlib.sha256(files[rel]).hexdigest() == f["digest"] for rel, f in art.files.items())


def test_without_known_digests_huggingface_hub_hashes_each_lfs_file(tmp_path, hub, hashed_files, tiny_llama,
                                                                    tiny_adapter):
    """The control: the spy does see huggingface_hub hash a file when it is not told the digest."""
    from registry.merge import merge
    from registry.publish.hf_hub import HubPublisher

    folder = merge(tiny_llama, tiny_adapter, tmp_path / "merged", max_shard_size=100_000).out_dir
    HubPublisher("team/plain", endpoint=hub.url).publish(folder)
    assert len(hashed_files) == len(list(folder.glob("*.safetensors"))) >= 3


def test_a_file_whose_size_is_not_the_catalogs_is_refused_before_anything_is_sent(tmp_path, hub, tiny_llama,
                                                                                 tiny_adapter):
    from registry.errors import IntegrityFailure
    from registry.merge import merge
    from registry.publish.hf_hub import HubPublisher

    res = merge(tiny_llama, tiny_adapter, tmp_path / "merged")
    files = {rel: (sha, (res.out_dir / rel).stat().st_size) for rel, sha in res.files.items()}
    shard = next(rel for rel in files if rel.endswith(".safetensors"))
    files[shard] = (files[shard][0], files[shard][1] + 1)
    with pytest.raises(IntegrityFailure, match="bytes"):
        HubPublisher("team/bad", endpoint=hub.url).publish_hashed(res.out_dir, files)
    assert hub.lfs == {} and not [p for _m, p in hub.requests if "/commit/" in p]
