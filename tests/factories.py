"""Building things for tests: catalog contents, API tokens, CLI runs, worker processes, store damage.

The one place tests import helpers from; conftest.py files hold only fixtures. Everything here is
real: rows go in through the catalog models, the CLI runs its real entry point, workers are real
processes. Nothing heavy is imported at module level, so a spawned child can import this cheaply.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# -- catalog contents ------------------------------------------------------------------------------
def open_registry(folder: Path, *, db: str | None = None, actor: str = "tester", upgrade: bool | None = None):
    """A Registry whose home and store live under `folder` (SQLite there unless `db` is given)."""
    from registry.app import Registry
    from registry.settings import Settings

    folder = Path(folder)
    db = db or f"sqlite:///{folder / 'catalog.db'}"
    return Registry(Settings.from_env(env={}, home=folder / "home", db=db, store=str(folder / "store"), actor=actor),
                    upgrade=upgrade)


def push(reg, base: Path, adapter: Path, *, name: str = "bot", base_name: str = "tiny") -> str:
    """Register `base` (once) and push `adapter` against it; returns the version's ref."""
    if not reg.list_bases(base_name):
        reg.add_base(base, name=base_name)
    return reg.push(adapter, name=name, base=base_name).ref


def fill_registry(reg, tiny_llama, tiny_adapter, tiny_adapter2):
    """A base, team-a/bot@1..2 (evals on both), team-b/bot@1 and a queued verify job (job 1)."""
    reg.add_base(tiny_llama, name="tiny-llama")
    reg.push(tiny_adapter, name="team-a/bot", base="tiny-llama", tags=["task=support"])
    reg.push(tiny_adapter2, name="team-a/bot", base="tiny-llama")
    reg.push(tiny_adapter, name="team-b/bot", base="tiny-llama")
    reg.add_eval("team-a/bot@1", {"acc": 0.5})
    reg.add_eval("team-a/bot@2", {"acc": 0.7})
    reg.jobs.verify("team-b/bot@1")  # job 1, queued (no worker runs in these tests)
    return reg


def synthetic_catalog(db_url: str, n_versions: int = 300, n_evals: int = 1500):
    """Bulk-load bench/lookup.py's synthetic catalog (skewed bases with several revisions, ~20
    versions per adapter, tags, evals, aliases, deprecated versions with successors) into the
    migrated, empty catalog at `db_url`; returns the dataset (bench/_lookup_data.py's Dataset)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_lookup_data", ROOT / "bench" / "_lookup_data.py")
    assert spec is not None and spec.loader is not None
    data = importlib.util.module_from_spec(spec)
    sys.modules["_lookup_data"] = data  # its dataclasses look their module up by name
    spec.loader.exec_module(data)
    ds = data.generate(n_versions, n_evals)
    data.load(db_url, data.catalog_tables(ds))
    return ds


def add_verification(reg, ref: str, *, base: str | None = None, passed: bool = True, dtype: str = "float32") -> None:
    """Record a verification result as the verify worker would."""
    from registry.catalog import models as M
    from registry.catalog import queries as Q
    from registry.refs import parse_ref

    with reg.db.write() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        b = Q.get_base(s, base) if base else row.base_model
        s.add(M.Verification(version_id=row.id, base_model_id=b.id, device_kind="cpu", dtype=dtype,
                             passed=passed, figures={}, versions={}))


def add_merged(reg, ref: str, *, files: dict[str, str], base: str | None = None, dtype: str = "float32",
               manifest: str | None = None, publish: bool = False) -> int:
    """Record a merged artifact (files: relpath -> digest), optionally published, as the merge code would."""
    from registry.catalog import models as M
    from registry.catalog import queries as Q
    from registry.refs import parse_ref

    with reg.db.write() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        b = Q.get_base(s, base) if base else row.base_model
        key = hashlib.sha256(f"{ref}{b.id}{dtype}{sorted(files.items())}".encode()).hexdigest()
        m = M.MergedArtifact(cache_key=key, version_id=row.id, base_model_id=b.id, dtype=dtype, engine="stream",
                             engine_version="1", manifest_digest=manifest or key,
                             files={p: {"digest": d, "size": 1} for p, d in files.items()})
        s.add(m)
        s.flush()
        if publish:
            s.add(M.Publication(merged_id=m.id, version_id=row.id, target="dir", uri="/tmp/x",
                                manifest_digest=m.manifest_digest))
        return m.id


def add_target(reg, url: str, *, namespace: str | None = None, kind: str = "publish", **options) -> int:
    """Allow `namespace` (None: every namespace) to publish under `url` (or, kind "base", to register
    base models from folders under it), as an admin would; returns the target's id."""
    from registry.targets import Targets

    return Targets(reg.core).add(url, namespace=namespace, kind=kind, options=options or None).id


# -- the HTTP API ----------------------------------------------------------------------------------
@dataclass
class Tokens:
    read: str
    write: str
    admin: str
    team_a: str   # write, limited to team-a/*
    revoked: str


def make_tokens(reg) -> Tokens:
    """One token of each kind, plus a revoked one."""
    t = reg.tokens
    revoked = t.create("gone", scope="admin").token
    t.revoke("gone")
    return Tokens(read=t.create("reader", scope="read").token, write=t.create("ci-bot", scope="write").token,
                  admin=t.create("root", scope="admin").token,
                  team_a=t.create("team-a-bot", scope="write", namespace="team-a").token, revoked=revoked)


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def adapter_files(folder) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart parts for every file of an adapter folder (filename = relative path)."""
    return [("files", (p.relative_to(folder).as_posix(), p.read_bytes(), "application/octet-stream"))
            for p in sorted(folder.rglob("*")) if p.is_file()]


# -- the CLI, in this process ----------------------------------------------------------------------
@dataclass(frozen=True)
class CliResult:
    """What one CLI run left behind (named like subprocess.CompletedProcess)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args, env: dict[str, str | None] | None = None, input: str | None = None) -> CliResult:
    """`adapter-registry ARGS` in this process, through the same `main(argv)` the console script runs.

    main() turns our errors into one line on stderr and `sys.exit(code)`; the exit is caught here.
    Both streams are captured (click's runner isolation), the environment holds no ADAPTER_REGISTRY_*
    variable but those in `env` (a value of None unsets), and what a command changes for the whole
    process (environment variables, the worker's SIGINT/SIGTERM handlers) is put back afterwards.
    A starting process costs a second or more; this costs milliseconds.
    """
    from click.testing import CliRunner

    from cli import main

    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ADAPTER_REGISTRY_")}
    overrides.update(env or {})
    saved_env = dict(os.environ)
    saved_handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with CliRunner().isolation(input=input, env=overrides) as (out, err, _mixed):
            try:
                main([str(a) for a in args])
                code = 0
            except SystemExit as e:
                if e.code is None or isinstance(e.code, int):
                    code = e.code or 0
                else:  # sys.exit("message"): the interpreter prints it and exits 1
                    sys.stderr.write(f"{e.code}\n")
                    code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        for s, handler in saved_handlers.items():
            signal.signal(s, handler)
    return CliResult(code, stdout, stderr)


# -- real processes --------------------------------------------------------------------------------
def cli_env(settings, **extra) -> dict[str, str]:
    """Environment that points a CLI subprocess at the same catalog, store and cache as `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_REGISTRY_")}
    env.update(ADAPTER_REGISTRY_HOME=str(settings.home), ADAPTER_REGISTRY_DB=settings.db_url,
               ADAPTER_REGISTRY_STORE=settings.store_url, ADAPTER_REGISTRY_ACTOR="tester",
               PYTHONPATH=str(ROOT), **extra)
    return env


def start_worker(settings, *args: str, **env) -> subprocess.Popen:
    """`adapter-registry worker ARGS` as a real process on the same catalog."""
    return subprocess.Popen([sys.executable, "-m", "registry", "worker", *args], cwd=ROOT,
                            env=cli_env(settings, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_serving(args: list[str], *, env: dict[str, str], timeout: float = 60
                  ) -> tuple[subprocess.Popen, str | None, list[str]]:
    """`python -m registry ARGS` (serve or demo, on port 0) until it prints the URL it serves at:
    (the process, the URL or None when it ended or timed out first, its stderr lines so far)."""
    import re
    import signal

    # A shell starts a background job (`make test &`, nohup) with SIGINT ignored, and a child inherits
    # that, so the server would never see the Ctrl-C the tests send it: give it SIGINT's default back.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    p = subprocess.Popen([sys.executable, "-m", "registry", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if ignored else None)
    assert p.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if m:
            return p, m.group(1), lines
    return p, None, lines


def wait_for(pred, *, timeout: float, every: float = 0.05, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def unsafe_claim(db, worker_id: str):
    """BROKEN ON PURPOSE: select a queued job, commit, then take it without checking it is still queued.

    The negative control of the claim tests: it proves the detector would see double claims.
    """
    import datetime as dt

    from sqlalchemy import select, update

    from registry.catalog import convert
    from registry.catalog import models as M

    with db.read() as s:
        job_id = s.scalar(select(M.Job.id).where(M.Job.state == "queued").order_by(M.Job.id).limit(1))
    if job_id is None:
        return None
    time.sleep(0.001)  # the window a real scheduler hiccup would open
    now = dt.datetime.now(dt.timezone.utc)
    with db.write() as s:
        s.execute(update(M.Job).where(M.Job.id == job_id).values(
            state="running", attempt=M.Job.attempt + 1, worker_id=worker_id, started_at=now,
            lease_expires_at=now + dt.timedelta(seconds=60)).execution_options(synchronize_session=False))
        return convert.job(s.get(M.Job, job_id))


def drain(db_url: str, home: str, out: str, barrier, unsafe: bool = False) -> None:
    """A worker process (multiprocessing spawn): run `record` jobs until none is ready, logging each to `out`.

    Each process appends the id of every job its task body runs to its own file, so a test can count
    executions independently of what the queue says. `unsafe=True` claims with unsafe_claim().
    """
    from registry.app import Registry
    from registry.jobs.worker import Worker
    from registry.settings import Settings

    reg = Registry(Settings.from_env(env={}, home=Path(home), db=db_url, store=str(Path(home) / "store"),
                                     actor="harness"), upgrade=False)
    log = open(out, "a", buffering=1)

    def record(ctx, payload):
        log.write(f"{ctx.job.id}\n")
        return {"pid": os.getpid()}

    w = Worker(reg.core, kinds=["record"], tasks={"record": record}, poll_s=0.05, rescue_every_s=3600)
    barrier.wait(timeout=60)
    if not unsafe:
        w.run(once=True)
    else:
        from registry.jobs import queue

        queue.register_worker(reg.db, w.info())
        while (job := unsafe_claim(reg.db, w.id)) is not None:
            w.run_job(job)
    log.close()
    reg.close()


# The child process: put the same file, wait for "go" on stdin so both start together, report.
_PUT_CHILD = """
import json, sys
from registry.storage import open_store
store = open_store(sys.argv[1], s3_endpoint=sys.argv[3] or None)
print("ready", flush=True)
sys.stdin.readline()
info = store.put_file(sys.argv[2])
print(json.dumps({"digest": info.digest, "size": info.size, "created": info.created}), flush=True)
"""


def put_from_two_processes(url: str, path: Path, endpoint: str = "") -> list[dict]:
    """Two processes put the same file into the store at `url` at the same moment; their results."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _PUT_CHILD, url, str(path), endpoint], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
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


# -- blob stores -----------------------------------------------------------------------------------
def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def corrupt(store, digest: str, *, offset: int = 0) -> None:
    """Flip one stored byte behind the store's back (bit rot, a bad disk, a hand edit)."""
    from registry.storage import LocalBlobStore

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


def stored_names(store) -> list[str]:
    """Every object/file the store holds, including anything half-written."""
    from registry.storage import LocalBlobStore

    if isinstance(store, LocalBlobStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


# -- merged checkpoints ----------------------------------------------------------------------------
def load_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        out.update(load_file(f))
    return out


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """Same tensor names, dtypes and values (torch.equal), and the same tying, vocabulary and dtype."""
    import torch

    wa, wb = load_weights(a), load_weights(b)
    assert sorted(wa) == sorted(wb)
    differ = [k for k in wa if wa[k].dtype != wb[k].dtype or not torch.equal(wa[k], wb[k])]
    assert not differ, f"tensors differ from peft: {differ}"
    ca, cb = (json.loads((Path(d) / "config.json").read_text()) for d in (a, b))
    for key in ("tie_word_embeddings", "vocab_size", "dtype"):
        assert ca.get(key) == cb.get(key), key


def leftovers(out_dir: Path) -> list[str]:
    """Anything a failed merge left at or beside out_dir."""
    return [p.name for p in out_dir.parent.iterdir() if p.name == out_dir.name or p.name.startswith(".tmp-")]


def assert_lora_target_agrees_with_peft(conf: dict, names) -> None:
    """registry.merge.targets.lora_target gives every module name the verdict peft's
    check_target_module_exists gives it (targeted, excluded or not targeted) under `conf`."""
    from peft import LoraConfig
    from peft.tuners.tuners_utils import _ExcludedModule, check_target_module_exists

    from registry.merge import targets

    peft_conf = LoraConfig(**conf)
    for name in names:
        theirs = check_target_module_exists(peft_conf, name)
        theirs = None if isinstance(theirs, _ExcludedModule) else bool(theirs)
        ours = targets.lora_target(conf, name)
        assert (None if ours is None else bool(ours)) == theirs, (name, conf)

