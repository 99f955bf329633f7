"""merge --out and publish at the I/O floor: merged bytes written once, stored blobs immutable through
every folder a user gets, cache hits that copy once, interrupted merges that leave nothing visible."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from registry.catalog import models as M
from registry.storage.digest import sha256_file

WEIGHTS = "model.safetensors"


@pytest.fixture
def pushed(sqlite_registry, tiny_llama, tiny_adapter):
    reg = sqlite_registry
    reg.add_base(tiny_llama, name="tiny-llama")
    reg.push(tiny_adapter, name="bot", base="tiny-llama")
    return reg


def files_of(reg, art) -> dict[str, str]:
    with reg.core.db.read() as s:
        return {k: f["digest"] for k, f in s.get(M.MergedArtifact, art.id).files.items()}


def merged_cache(reg, art) -> Path:
    from registry.workflows.merge import merged_dir

    with reg.core.db.read() as s:
        return merged_dir(reg.core, s.get(M.MergedArtifact, art.id).cache_key)


def weight_files(files: dict[str, str]) -> list[str]:
    return [rel for rel in files if rel.endswith(".safetensors")]


def written_bytes() -> int:
    """Bytes this process has passed to write() and friends so far (the kernel's own count)."""
    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(io["wchar"])


def test_fresh_merge_out_writes_the_merged_bytes_once_plus_one_copy(pushed, tmp_path):
    before = written_bytes()
    art = pushed.merge("bot", out=tmp_path / "out")
    written = written_bytes() - before
    files = files_of(pushed, art)
    for rel, digest in files.items():  # the engine's own files became the blobs: read-only, verified
        blob = pushed.core.store.path(digest)
        assert blob.stat().st_mode & 0o777 == 0o444 and pushed.core.store.verify(digest)
        assert not os.path.samefile(blob, tmp_path / "out" / rel)
    # the engine's write plus the copy into --out (copy_file_range counts here too); before: 3x
    assert written < 2.3 * art.size_bytes, (written, art.size_bytes)


def test_editing_an_out_file_changes_no_stored_blob_and_no_cached_file(pushed, tmp_path):
    out = tmp_path / "out"
    art = pushed.merge("bot", out=out)
    files = files_of(pushed, art)
    rel = weight_files(files)[0]
    target = out / rel
    assert target.stat().st_mode & 0o200  # the user's own folder: writable
    assert target.stat().st_nlink == 1  # a copy or a reflink, never a link to a stored blob
    with open(target, "r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 64)
    assert sha256_file(target) != files[rel]
    assert pushed.core.store.verify(files[rel])
    cache = pushed.merge("bot").path
    assert sha256_file(cache / rel) == files[rel] and not os.path.samefile(cache / rel, target)
    again = pushed.merge("bot", out=tmp_path / "again")
    assert all(sha256_file(tmp_path / "again" / r) == d for r, d in files_of(pushed, again).items())


def test_cache_hit_out_copies_from_the_merged_folder_without_fetching_blobs(pushed, tmp_path):
    first = pushed.merge("bot", out=tmp_path / "one")
    blob_cache = pushed.settings.cache_dir / "blobs"
    shutil.rmtree(blob_cache, ignore_errors=True)
    second = pushed.merge("bot", out=tmp_path / "two")
    assert not second.created and second.id == first.id and second.path == tmp_path / "two"
    assert all(sha256_file(tmp_path / "two" / r) == d for r, d in files_of(pushed, second).items())
    assert not blob_cache.exists()  # nothing fetched from the store, nothing re-hashed but the manifest
    assert not (tmp_path / "two" / ".adapter-registry-folder").exists()


def test_cache_hit_on_a_planted_merged_folder_rebuilds_it_before_copying(pushed, tmp_path):
    art = pushed.merge("bot")
    cache = merged_cache(pushed, art)
    files = files_of(pushed, art)
    rel = weight_files(files)[0]
    size = (cache / rel).stat().st_size
    os.unlink(cache / rel)  # a planted file of the same size, not the stored blob
    (cache / rel).write_bytes(b"\0" * size)
    (cache / ".adapter-registry-folder").unlink()
    pushed.merge("bot", out=tmp_path / "out")
    assert sha256_file(tmp_path / "out" / rel) == files[rel]


class Interrupt(Exception):
    pass


def test_interrupted_merge_leaves_no_cache_folder_no_row_and_no_out(pushed, tmp_path):
    def stop(done, total, what):
        if done == 3:
            raise Interrupt

    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        pushed.merge("bot", out=out, progress=stop)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    merged_root = pushed.settings.cache_dir / "merged"
    assert not merged_root.exists() or not list(merged_root.iterdir())
    with pushed.core.db.read() as s:
        assert s.scalar(select(func.count()).select_from(M.MergedArtifact)) == 0
    art = pushed.merge("bot", out=out)  # and the next merge runs as if nothing happened
    assert art.created and all(sha256_file(out / r) == d for r, d in files_of(pushed, art).items())


def test_publish_to_dir_copies_from_the_cache_and_never_aliases_a_stored_blob(pushed, tmp_path):
    from registry.workflows import publish as publish_wf

    art = pushed.merge("bot")
    dest = tmp_path / "published"
    publish_wf.run(pushed.core, "bot@1", to=f"dir://{dest}", dtype=None, engine="auto", device="cpu", force=True)
    files = files_of(pushed, art)
    for rel, digest in files.items():
        assert (dest / rel).stat().st_nlink == 1
        assert sha256_file(dest / rel) == digest
    assert not (dest / ".adapter-registry-folder").exists()


def test_publish_after_merge_out_hashes_and_copies_the_stored_blobs_once(pushed, tmp_path):
    from registry.workflows import publish as publish_wf

    art = pushed.merge("bot", out=tmp_path / "out")
    dest = tmp_path / "published"
    publish_wf.run(pushed.core, "bot@1", to=f"dir://{dest}", dtype=None, engine="auto", device="cpu", force=True)
    assert all(sha256_file(dest / r) == d for r, d in files_of(pushed, art).items())
    from registry.storage.cache import cache_path

    blobs = pushed.settings.cache_dir / "blobs"
    assert not any(cache_path(blobs, d).exists() for d in files_of(pushed, art).values())  # nothing fetched
    assert not merged_cache(pushed, art).exists()  # and no cache folder built just to be copied again
    assert not [p for p in (pushed.settings.cache_dir / "merged").iterdir() if p.name.startswith(".work-")]


def test_a_stored_blob_changed_in_place_is_never_published(pushed, tmp_path):
    from registry.errors import IntegrityFailure
    from registry.workflows import publish as publish_wf

    art = pushed.merge("bot")  # its cache folder holds a verified copy
    files = files_of(pushed, art)
    rel = weight_files(files)[0]
    blob = pushed.core.store.path(files[rel])
    blob.chmod(0o644)
    with open(blob, "r+b") as f:  # the same size: only its sha256 tells
        f.seek(-100, os.SEEK_END)
        byte = f.read(1)[0]
        f.seek(-100, os.SEEK_END)
        f.write(bytes([byte ^ 0xFF]))
    dest = tmp_path / "published"
    publish_wf.run(pushed.core, "bot@1", to=f"dir://{dest}", dtype=None, engine="auto", device="cpu", force=True)
    assert all(sha256_file(dest / r) == d for r, d in files.items())  # the checked cache copy shipped
    shutil.rmtree(merged_cache(pushed, art))
    shutil.rmtree(pushed.settings.cache_dir / "blobs")
    with pytest.raises(IntegrityFailure):  # no good copy left: refused, nothing written
        publish_wf.run(pushed.core, "bot@1", to=f"dir://{tmp_path / 'again'}", dtype=None, engine="auto",
                       device="cpu", force=True)
    assert not (tmp_path / "again").exists()


def test_out_shards_are_written_while_the_merge_runs_and_are_not_copied_after(pushed, tmp_path):
    """`--out` gets each shard from the engine's own writes (a second file, the same bytes, one hash):
    when the last tensor is merged, the earlier shards are already complete beside `out`, hidden."""
    out, seen = tmp_path / "out", {}

    def look(done, total, what):
        if done == total:
            builds = [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
            seen["shards"] = {p.name: p.stat().st_size for b in builds for p in b.glob("*.safetensors")}

    art = pushed.merge("bot", out=out, max_shard_size=200_000, progress=look)
    files = files_of(pushed, art)
    shards = sorted(weight_files(files))
    assert len(shards) >= 3
    assert sorted(seen["shards"]) == shards  # every shard file open beside out before the merge ended
    assert all(seen["shards"][rel] == (out / rel).stat().st_size for rel in shards[:-2])  # earlier ones complete
    for rel, digest in files.items():
        assert sha256_file(out / rel) == digest
        assert (out / rel).stat().st_nlink == 1 and not os.path.samefile(out / rel, pushed.core.store.path(digest))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_mirror_shard_writer_writes_the_same_bytes_to_both_files_and_closes_both(tmp_path):
    from registry.merge.st import OutTensor, ShardWriter

    ts = [OutTensor("a", "F32", (4,)), OutTensor("b", "U8", (3,))]
    sw = ShardWriter(tmp_path / "one.safetensors", ts, mirror=tmp_path / "two.safetensors")
    sw.write("a", bytes(range(16)))
    src = tmp_path / "src"
    src.write_bytes(b"xyzabc")
    fd = os.open(src, os.O_RDONLY)
    try:
        sw.copy_from("b", fd, 3)
    finally:
        os.close(fd)
    sw.close()
    one, two = (tmp_path / "one.safetensors").read_bytes(), (tmp_path / "two.safetensors").read_bytes()
    assert one == two and one.endswith(bytes(range(16)) + b"abc") and sw.sha256.hexdigest() == sha256_file(
        tmp_path / "two.safetensors") and not sw.files


def test_dir_publisher_from_a_local_store_ships_only_blobs_that_match_and_leaves_nothing_otherwise(pushed, tmp_path):
    """publish_stored hashes each stored blob while copying it, and renames the folder into place only
    when every file matched: a blob changed in place gives None (the caller ships a verified folder)."""
    from registry.publish.directory import DirectoryPublisher

    art = pushed.merge("bot")
    with pushed.core.db.read() as s:
        m = s.get(M.MergedArtifact, art.id)
        files = {k: (f["digest"], int(f["size"])) for k, f in m.files.items()}
        manifest = m.manifest_digest
    good = DirectoryPublisher(tmp_path / "good").publish_stored(files, manifest, store=pushed.core.store)
    assert good is not None and good.manifest_digest == manifest
    for rel, (digest, _size) in files.items():
        assert sha256_file(tmp_path / "good" / rel) == digest and (tmp_path / "good" / rel).stat().st_nlink == 1
    again = DirectoryPublisher(tmp_path / "good").publish_stored(files, manifest, store=pushed.core.store)
    assert again is not None  # the same manifest already there: a no-op
    rel = weight_files({k: d for k, (d, _n) in files.items()})[0]
    blob = pushed.core.store.path(files[rel][0])
    blob.chmod(0o644)
    with open(blob, "r+b") as f:  # same size, different bytes
        f.seek(-1, os.SEEK_END)
        last = f.read(1)[0]
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last ^ 1]))
    bad = DirectoryPublisher(tmp_path / "bad").publish_stored(files, manifest, store=pushed.core.store)
    assert bad is None and not [p for p in tmp_path.iterdir() if "bad" in p.name]
    unsafe = {"../escape": files[rel], **files}
    assert DirectoryPublisher(tmp_path / "u").publish_stored(unsafe, manifest, store=pushed.core.store) is None


def test_out_holds_the_recorded_files_when_the_row_kept_is_another_runs(pushed, tmp_path):
    """A merge whose row already exists under the cache key (here: `--validate` over an unvalidated
    merge whose recorded shard came from elsewhere, same size, other bits) must not leave this run's
    shard in `out` beside the recorded manifest: `out` is exactly the recorded artifact."""
    from sqlalchemy.orm.attributes import flag_modified

    first = pushed.merge("bot")
    with pushed.core.db.read() as s:
        files = {k: dict(f) for k, f in s.get(M.MergedArtifact, first.id).files.items()}
    rel = weight_files({k: f["digest"] for k, f in files.items()})[0]
    other = bytearray(pushed.core.store.path(files[rel]["digest"]).read_bytes())
    other[-1] ^= 1  # another build's bits: the same size, a different last byte
    (tmp_path / "other").write_bytes(bytes(other))
    info = pushed.core.store.put_file(tmp_path / "other")
    files[rel]["digest"] = info.digest
    with pushed.core.db.write() as s:
        row = s.get(M.MergedArtifact, first.id)
        row.files = files
        flag_modified(row, "files")
    out = tmp_path / "out"
    art = pushed.merge("bot", out=out, validate=True)  # merges again: the kept row has no logits
    assert art.id == first.id
    assert sha256_file(out / rel) == info.digest  # the recorded shard, not the one this run wrote
    assert all(sha256_file(out / r) == f["digest"] for r, f in files.items())


def test_a_full_disk_under_out_still_records_the_merge_and_leaves_nothing_at_out(pushed, mounted, tmp_path):
    """`--out`'s copy is written while merging, on its own disk: when that disk fills, the merge
    still lands in the store and is recorded (as when `out` was copied afterwards), and the command
    fails with DiskFull for `out` only, leaving nothing there."""
    from registry.errors import DiskFull

    mnt = mounted("ext4")
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, bytes(1 << 16)):  # fill the disk ...
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, filler.stat().st_size - 100_000)  # ... then free ~100 KB: the weights do not fit
    with pytest.raises(DiskFull):
        pushed.merge("bot", out=mnt / "out")
    assert sorted(p.name for p in mnt.iterdir()) == ["filler", "lost+found"]
    with pushed.core.db.read() as s:
        assert s.scalar(select(func.count()).select_from(M.MergedArtifact)) == 1
    again = pushed.merge("bot", out=tmp_path / "out")  # a cache hit now
    assert not again.created
    assert all(sha256_file(tmp_path / "out" / r) == d for r, d in files_of(pushed, again).items())


def test_build_folders_left_by_a_killed_merge_are_swept_when_their_process_is_gone(pushed, tmp_path):
    import subprocess
    import sys
    import time

    from registry.storage.cache import STALE_BUILD_S

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    old = time.time() - STALE_BUILD_S - 60
    stale = tmp_path / f".out.{dead}-{'a' * 32}.tmp"
    live = tmp_path / f".out.{os.getpid()}-{'b' * 32}.tmp"  # a merge still running
    recent = tmp_path / f".out.{dead}-{'c' * 32}.tmp"  # maybe another host's, just started
    for d in (stale, live, recent):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x" * 1000)
    for d in (stale, live):
        os.utime(d, (old, old))
    pushed.merge("bot", out=tmp_path / "out")
    assert not stale.exists() and live.exists() and recent.exists()


def test_on_a_reflink_file_system_out_is_a_clone_of_the_stored_blobs_not_a_second_write(mounted, tmp_path):
    """Where the store's file system shares extents (XFS here, loop-mounted), `--out` is cloned from
    the stored blobs after the merge instead of written a second time during it: the disk takes the
    merged bytes once, and editing `out` still cannot change a stored blob (copy on write)."""
    from registry.app import Registry
    from registry.settings import Settings
    from registry.testing.tiny import build_adapter, build_llama

    mnt = mounted("xfs")
    base = build_llama(tmp_path / "base", dtype="float32", hidden_size=384, intermediate_size=1000, num_layers=1)
    ad = build_adapter(base, tmp_path / "adapter", target_modules="all-linear")
    reg = Registry(Settings.from_env(env={}, home=mnt / "home"))
    reg.add_base(base, name="wide")
    reg.push(ad, name="bot", base="wide")
    import fcntl

    (mnt / "probe").write_bytes(b"x" * 4096)
    with open(mnt / "probe", "rb") as fi, open(mnt / "probe2", "xb") as fo:
        fcntl.ioctl(fo.fileno(), 0x40049409, fi.fileno())  # FICLONE: this file system has reflinks
    (mnt / "probe").unlink()
    (mnt / "probe2").unlink()

    def used() -> int:
        st = os.statvfs(mnt)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    before = used()
    art = reg.merge("bot", out=mnt / "out")
    grew = used() - before
    files = files_of(reg, art)
    weights = sum(int(f.stat().st_size) for f in (mnt / "out").glob("*.safetensors"))
    assert weights > 5_000_000
    assert grew < 1.5 * weights, (grew, weights)  # one copy on disk: out shares the blobs' extents
    rel = weight_files(files)[0]
    assert (mnt / "out" / rel).stat().st_nlink == 1
    with open(mnt / "out" / rel, "r+b") as f:
        f.seek(1000)
        f.write(b"\xff" * 64)
    assert reg.core.store.verify(files[rel])
    assert all(sha256_file(mnt / "out" / r) == d for r, d in files.items() if r != rel)
