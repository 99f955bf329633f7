"""Fuzzing the gatekeeper: thousands of mutations of real peft-saved adapters and real tiny bases.

Every case either registers (and then loads in peft with the logits of the folder that was
pushed: checked on a sample) or is refused with a RegistryError of exit status 2 / HTTP 4xx and
a one-line message; no other exception, no case over its time bound, bounded memory, nothing
left registered by a refused case. In-process against a real SQLite catalog, from a fixed seed;
the CLI path is sampled with a few dozen subprocesses. Counts go to the terminal summary.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.adapters.validate.safetensors import BITS, check_header
from registry.errors import RegistryError
from registry.testing.tiny import build_adapter, build_llama
from tests.factories import open_registry
from tests.fuzz.conftest import record
from tests.fuzz.mutations import config_mutation, join, weights_mutation

SEED = 11
ADAPTER_CASES = 1700
BASE_CASES = 340
CLI_CASES = 30
CASE_SECONDS = 5.0
RSS_GROWTH_MB = 600
W, C = "adapter_model.safetensors", "adapter_config.json"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    base = build_llama(root / "base", num_layers=1)
    sharded = build_llama(root / "sharded", num_layers=1, max_shard_size="40KB", with_tokenizer=True)
    adapters = [build_adapter(base, root / "lora", target_modules=["q_proj", "v_proj"]),
                build_adapter(base, root / "dora", target_modules=["q_proj", "down_proj"], use_dora=True),
                build_adapter(base, root / "mts", target_modules=["k_proj"], modules_to_save=["lm_head"])]
    return root, base, sharded, adapters


def _write(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def _file_trick(folder: Path, rng: random.Random) -> str:
    op = rng.randrange(5)
    name = rng.choice([W, C, "README.md"])
    target = folder.parent / f"{folder.name}.outside"
    if (folder / name).exists():
        os.replace(folder / name, target)
    else:
        target.write_bytes(b"{}")
    if op == 0:
        (folder / name).symlink_to(target)
        return "link_outside"
    if op == 1:
        (folder / name).symlink_to(name)
        return "link_loop"
    if op == 2:
        os.mkfifo(folder / name)
        return "fifo"
    if op == 3:
        (folder / name).mkdir()
        return "directory"
    (folder / name).symlink_to("/dev/zero")
    return "device_link"


def _outcome(fn) -> tuple[str, BaseException | None]:
    try:
        fn()
    except RegistryError as e:
        return ("refused", e) if e.exit_code == 2 and 400 <= e.status < 500 else ("bad", e)
    except BaseException as e:  # a traceback for the user: the bug this suite hunts
        return "bad", e
    return "accepted", None


def _code(e: BaseException) -> str:
    codes = getattr(e, "codes", None)
    return codes[0] if codes else getattr(e, "code", type(e).__name__)


def test_fuzz_adapter_mutations_are_registered_or_refused_cleanly(corpus, tmp_path):
    root, base, _sharded, adapters = corpus
    reg = open_registry(tmp_path / "reg")
    reg.add_base(base, name="tiny")
    originals = [{p.name: p.read_bytes() for p in a.iterdir() if p.is_file()} for a in adapters]
    rng = random.Random(SEED)
    refused: Counter = Counter()
    kinds: Counter = Counter()
    bad: list[str] = []
    accepted: list[tuple[str, Path]] = []
    slowest, start, rss0 = 0.0, time.perf_counter(), rss_mb()
    for i in range(ADAPTER_CASES):
        files = dict(rng.choice(originals))
        folder = tmp_path / "cases" / str(i)
        r = rng.random()
        if r < 0.55:
            kind, files[W] = weights_mutation(files[W], rng)
        elif r < 0.95:
            kind, files[C] = config_mutation(json.loads(files[C]), rng)
        else:
            kind = None
        _write(folder, files)
        if kind is None:
            kind = _file_trick(folder, rng)
        kinds[kind.split("_")[0]] += 1
        before = len(reg.search(name=f"f{i}").items)
        t0 = time.perf_counter()
        result, err = _outcome(lambda f=folder, n=f"f{i}": reg.push(f, name=n, base="tiny"))
        took = time.perf_counter() - t0
        slowest = max(slowest, took)
        if took > CASE_SECONDS:
            bad.append(f"case {i} ({kind}) took {took:.1f} s")
        if result == "refused":
            refused[_code(err)] += 1
            if "\n" in str(err) or not str(err):
                bad.append(f"case {i} ({kind}): message is not one line: {str(err)!r}")
            if len(reg.search(name=f"f{i}").items) != before:
                bad.append(f"case {i} ({kind}): refused but registered")
        elif result == "bad":
            bad.append(f"case {i} ({kind}): {type(err).__name__}: {err}")
        else:
            accepted.append((f"f{i}", folder))
        if result != "accepted":
            shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - start
    peak = rss_mb()
    sampled = _loads_like_the_pushed_folder(reg, base, accepted, rng)
    record("adapters", cases=ADAPTER_CASES, accepted=len(accepted), refused=refused, seconds=seconds,
           slowest=slowest, peak_rss_mb=peak, sampled_in_peft=sampled)
    reg.close()
    assert not bad, bad[:20]
    assert peak - rss0 < RSS_GROWTH_MB
    assert sum(refused.values()) > ADAPTER_CASES // 2 and accepted  # the mutations reach both outcomes
    assert len(kinds) >= 8


def _loads_like_the_pushed_folder(reg, base: Path, accepted, rng: random.Random, n: int = 4) -> int:
    """An accepted case, resolved from the registry, loads in peft with the logits of the folder pushed."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 5, 9, 17, 33]])
    done = 0
    for name, folder in rng.sample(accepted, min(n, len(accepted))):
        logits = []
        for src in (folder, reg.resolve(name)):
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), src).eval()
            with torch.no_grad():
                logits.append(model(ids).logits)
        assert torch.equal(*logits), name
        done += 1
    return done


def _base_mutation(folder: Path, rng: random.Random) -> str:
    idx = folder / "model.safetensors.index.json"
    shards = sorted(folder.glob("model-*.safetensors"))
    r = rng.random()
    if r < 0.35:
        shard = rng.choice(shards)
        kind, data = weights_mutation(shard.read_bytes(), rng)
        shard.write_bytes(data)
        return f"shard_{kind}"
    if r < 0.6:
        doc = json.loads(idx.read_text())
        wm = doc["weight_map"]
        k = rng.choice(sorted(wm))
        op = rng.randrange(6)
        if op == 0:
            wm[k] = rng.choice(["../x.safetensors", "/etc/passwd", "sub/model.safetensors", "", ".", "..", 3])
        elif op == 1:
            wm[k] = shards[(shards.index(folder / wm[k]) + 1) % len(shards)].name
        elif op == 2:
            doc["weight_map"] = rng.choice([[], "x", None, 1, list(wm.items())])
        elif op == 3:
            wm.pop(k)
        elif op == 4:
            wm[k + ".extra"] = wm[k]
        else:
            doc.pop("weight_map")
        idx.write_text(json.dumps(doc))
        return f"index_{op}"
    if r < 0.75:
        cfg = json.loads((folder / "config.json").read_text())
        k = rng.choice(["vocab_size", "hidden_size", "num_hidden_layers", "model_type", "tie_word_embeddings",
                        "architectures", rng.choice(sorted(cfg))])
        cfg[k] = rng.choice([None, 0, 1, 7, 10**9, "x", [], {}, True, cfg.get(k, 1)])
        (folder / "config.json").write_text(json.dumps(cfg))
        return f"config_{k}"
    if r < 0.85:
        p = folder / "tokenizer.json"
        text = p.read_text()
        p.write_text(text[: rng.randrange(len(text))] if rng.random() < 0.5 else text.replace('"BPE"', '"Nope"'))
        return "tokenizer"
    if r < 0.92:
        rng.choice(shards).unlink() if rng.random() < 0.5 else idx.unlink()
        return "files_missing"
    name = rng.choice(["config.json", "tokenizer.json", shards[0].name])
    target = folder.parent / f"{folder.name}.{name}"
    os.replace(folder / name, target)
    if rng.random() < 0.6:
        (folder / name).symlink_to(target)
        return "link_outside"
    os.mkfifo(folder / name)
    return "fifo"


def test_fuzz_base_mutations_are_registered_or_refused_cleanly(corpus, tmp_path):
    _root, _base, sharded, _adapters = corpus
    reg = open_registry(tmp_path / "reg")
    rng = random.Random(SEED + 1)
    refused: Counter = Counter()
    bad: list[str] = []
    accepted = 0
    slowest, start, rss0 = 0.0, time.perf_counter(), rss_mb()
    for i in range(BASE_CASES):
        folder = shutil.copytree(sharded, tmp_path / "cases" / str(i))
        kind = _base_mutation(folder, rng)
        n_before = len(reg.list_bases())
        t0 = time.perf_counter()
        result, err = _outcome(lambda f=folder, n=f"b{i}": reg.add_base(f, name=n))
        took = time.perf_counter() - t0
        slowest = max(slowest, took)
        if took > CASE_SECONDS:
            bad.append(f"case {i} ({kind}) took {took:.1f} s")
        if result == "refused":
            refused[_code(err)] += 1
            if "\n" in str(err):
                bad.append(f"case {i} ({kind}): message is not one line")
            if len(reg.list_bases()) != n_before:
                bad.append(f"case {i} ({kind}): refused but registered")
        elif result == "bad":
            bad.append(f"case {i} ({kind}): {type(err).__name__}: {err}")
        else:
            accepted += 1
        shutil.rmtree(folder, ignore_errors=True)
    record("bases", cases=BASE_CASES, accepted=accepted, refused=refused, seconds=time.perf_counter() - start,
           slowest=slowest, peak_rss_mb=rss_mb())
    reg.close()
    assert not bad, bad[:20]
    assert rss_mb() - rss0 < RSS_GROWTH_MB
    assert sum(refused.values()) > BASE_CASES // 2


# -- hypothesis: generated headers, judged against the reference parser ----------------------------
_dtype = st.sampled_from([*sorted(BITS), "X", "f32"])
_tensor = st.tuples(st.text(min_size=1, max_size=6), _dtype, st.lists(st.integers(0, 9), max_size=3))


@st.composite
def _layout(draw):
    """A header that tiles its data section (then, half the time, one entry or the body perturbed)."""
    header, off = {}, 0
    for name, dtype, shape in draw(st.lists(_tensor, max_size=5)):
        nbytes = -(-(eval_numel(shape) * BITS.get(dtype, 8)) // 8)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + nbytes]}
        off += nbytes
    body = off
    if header and draw(st.booleans()):
        victim = draw(st.sampled_from(sorted(header)))
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        header[victim][field] = draw({"dtype": _dtype, "shape": st.lists(st.integers(0, 9), max_size=3),
                                      "data_offsets": st.lists(st.integers(0, 80), min_size=2, max_size=2)}[field])
    body += draw(st.sampled_from([0, 0, 0, 1, 8]))
    return header, body


def eval_numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


HYPOTHESIS_EXAMPLES = 400
_seen = Counter()


@settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(layout=_layout(), meta=st.one_of(st.none(), st.dictionaries(
    st.text(max_size=3), st.one_of(st.text(max_size=3), st.integers()), max_size=2)))
def test_generated_headers_are_accepted_only_when_the_reference_parser_accepts_them(layout, meta):
    import safetensors

    header, body = layout
    h = dict(header)
    if meta is not None:
        h["__metadata__"] = meta
    data = join(h, b"\0" * body)
    chk = check_header("gen.safetensors", data)
    _seen["accepted" if not chk.findings else chk.findings[0].code] += 1
    record("headers (hypothesis)", cases=sum(_seen.values()), accepted=_seen["accepted"],
           refused=Counter({k: v for k, v in _seen.items() if k != "accepted"}), seconds=0.0, slowest=0.0,
           peak_rss_mb=rss_mb())
    if not chk.findings:
        safetensors.deserialize(data)  # raises if the reference implementation refuses what we accept
    else:
        assert all(f.code.startswith("ST_") and "\n" not in f.message for f in chk.findings)


# -- the CLI path, sampled: a subprocess per case ----------------------------------------------------
def test_fuzz_cli_push_refusals_are_one_line_with_exit_2(corpus, tmp_path):
    _root, base, _sharded, adapters = corpus
    env = {**os.environ, "ADAPTER_REGISTRY_HOME": str(tmp_path / "home"),
           "ADAPTER_REGISTRY_DB": f"sqlite:///{tmp_path / 'cli.db'}", "ADAPTER_REGISTRY_STORE": str(tmp_path / "s")}
    cmd = [sys.executable, "-m", "registry"]
    subprocess.run([*cmd, "base", "add", str(base), "--name", "tiny"], env=env, check=True, capture_output=True)
    rng = random.Random(SEED + 2)
    originals = [{p.name: p.read_bytes() for p in a.iterdir() if p.is_file()} for a in adapters]
    codes: Counter = Counter()
    bad, accepted, start, slowest = [], 0, time.perf_counter(), 0.0
    for i in range(CLI_CASES):
        files = dict(rng.choice(originals))
        if i % 2:
            kind, files[W] = weights_mutation(files[W], rng)
        else:
            kind, files[C] = config_mutation(json.loads(files[C]), rng)
        folder = tmp_path / "cases" / str(i)
        _write(folder, files)
        sub = ["check", str(folder)] if i % 5 == 0 else ["push", str(folder), "--name", f"c{i}", "--base", "tiny"]
        t0 = time.perf_counter()
        p = subprocess.run([*cmd, *sub], env=env, capture_output=True, text=True, timeout=60)
        slowest = max(slowest, time.perf_counter() - t0)
        if p.returncode == 0:
            accepted += 1
            continue
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
        if p.returncode != 2 or "Traceback" in p.stderr + p.stdout or (sub[0] == "push" and len(errors) != 1):
            bad.append(f"case {i} ({kind}) rc={p.returncode}: {p.stderr[-400:]}")
        codes[kind.split("_")[0]] += 1
    record("cli (subprocess)", cases=CLI_CASES, accepted=accepted, refused=codes,
           seconds=time.perf_counter() - start, slowest=slowest, peak_rss_mb=rss_mb())
    assert not bad, bad[:5]
