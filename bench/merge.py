"""Benchmark: streaming merge vs peft merge vs `cp -r`, wall time and peak RSS, each in its own process.

    .venv/bin/python bench/merge.py                # ~1.1B-parameter bf16 Llama, rank-16 LoRA on all linears
    .venv/bin/python bench/merge.py --size small   # a quick run (~70M parameters)
    .venv/bin/python bench/merge.py --e2e --size 200m   # the CLI as a user runs it (issue 13)
    .venv/bin/python bench/merge.py --s3 --size small   # the same into an S3 store (moto on loopback)

--e2e runs `adapter-registry merge REF --out DIR` on a fresh catalog (base add + push beforehand,
not timed), then a cache-hit `merge --out` and `publish --to dir://` of the same version, each in
its own process, interleaved with peft (from_pretrained + merge_and_unload + save_pretrained) and
`cp -r` of the base and of the merged folder; the engine's own time comes from the merge's JSON.

--s3 starts moto's S3 server on loopback in this process and runs, each in its own process on a
fresh catalog whose store is a bucket there: `merge REF` (each shard uploads while the next is
merged) against peft followed by a boto3 upload of peft's folder (what `aws s3 cp --recursive`
does), and `publish --to s3://` of the merge into another bucket (server-side copies) against that
upload. moto shares the CPUs with what is measured, which a real endpoint would not.

The base (random weights, sharded) and the adapter are generated straight into safetensors files
with numpy (no torch model is instantiated) and cached under bench/results/ (git-ignored). Every
measurement runs in a fresh process; peak RSS is that process's ru_maxrss (os.wait4). Each is
repeated --repeats times and the median reported. Results go to bench/results/merge-<size>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.merge.st import OutTensor, ShardWriter, plan_shards, shard_name  # noqa: E402

SIZES = {
    # TinyLlama-1.1B's shape
    "1b": dict(hidden=2048, inter=5632, layers=22, heads=32, kv=4, vocab=32000),
    "small": dict(hidden=512, inter=1536, layers=8, heads=8, kv=4, vocab=32000),
    "200m": dict(hidden=1024, inter=2816, layers=12, heads=16, kv=4, vocab=32000),  # ~200M, 0.4 GB bf16
    # Llama-3-8B's shape (16 GB in bf16): the GPU benchmark of issue 3
    "8b": dict(hidden=4096, inter=14336, layers=32, heads=32, kv=8, vocab=128256),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (round to nearest even), as uint16."""
    u = x.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _shapes(s: dict) -> list[tuple[str, tuple[int, ...]]]:
    h, i, hd = s["hidden"], s["inter"], s["hidden"] // s["heads"]
    kvd = s["kv"] * hd
    out = [("model.embed_tokens.weight", (s["vocab"], h))]
    for n in range(s["layers"]):
        p = f"model.layers.{n}."
        out += [(p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,)),
                (p + "self_attn.q_proj.weight", (h, h)), (p + "self_attn.k_proj.weight", (kvd, h)),
                (p + "self_attn.v_proj.weight", (kvd, h)), (p + "self_attn.o_proj.weight", (h, h)),
                (p + "mlp.gate_proj.weight", (i, h)), (p + "mlp.up_proj.weight", (i, h)),
                (p + "mlp.down_proj.weight", (h, i))]
    out += [("model.norm.weight", (h,)), ("lm_head.weight", (s["vocab"], h))]
    return out


def build_base(out: Path, s: dict, *, shard_bytes: int = 1_000_000_000) -> Path:
    """A random bf16 Llama checkpoint written shard by shard (never the whole model in memory)."""
    if (out / "config.json").exists():
        return out
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pool = _bf16(rng.standard_normal(1 << 24, dtype=np.float32) * 0.02)
    ones = _bf16(np.ones(s["hidden"], dtype=np.float32))
    tensors = [OutTensor(n, "BF16", shape) for n, shape in _shapes(s)]
    shards = plan_shards(tensors, shard_bytes)
    weight_map = {}
    for k, shard in enumerate(shards):
        name = shard_name(k, len(shards))
        w = ShardWriter(tmp / name, shard)
        for t in shard:
            n = int(np.prod(t.shape))
            if len(t.shape) == 1:
                data = ones[:n]
            else:  # windows of a random pool at random offsets: random enough, and fast
                data = np.concatenate([np.roll(pool, int(rng.integers(len(pool))))[: len(pool)]
                                       for _ in range(-(-n // len(pool)))])[:n]
            w.write(t.name, data)
            weight_map[t.name] = name
        w.close()
    total = sum(t.nbytes for t in tensors)
    (tmp / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (tmp / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "dtype": "bfloat16",
        "hidden_size": s["hidden"], "intermediate_size": s["inter"], "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"], "num_key_value_heads": s["kv"], "vocab_size": s["vocab"],
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "hidden_act": "silu",
        "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "attention_bias": False,
        "mlp_bias": False, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
    }, indent=2))
    from registry.testing.tiny import build_tokenizer

    build_tokenizer(tmp)
    tmp.rename(out)
    return out


def build_adapter(out: Path, base: Path, s: dict, *, r: int = 16) -> Path:
    """A rank-r LoRA on every linear layer, fp32, with peft's file layout and config."""
    if (out / "adapter_config.json").exists():
        return out
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    sd = {}
    for name, shape in _shapes(s):
        mod = name.removesuffix(".weight")
        if mod.rsplit(".", 1)[-1] in TARGETS:
            out_f, in_f = shape
            sd[f"base_model.model.{mod}.lora_A.weight"] = (rng.standard_normal((r, in_f), dtype=np.float32) * 0.02)
            sd[f"base_model.model.{mod}.lora_B.weight"] = (rng.standard_normal((out_f, r), dtype=np.float32) * 0.02)
    out.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": str(base), "r": r,
        "lora_alpha": 2 * r, "lora_dropout": 0.0, "target_modules": TARGETS, "bias": "none",
        "fan_in_fan_out": False, "use_rslora": False, "use_dora": False, "init_lora_weights": True,
        "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {}, "inference_mode": True,
    }, indent=2))
    return out


GPU_PEAK = "; import sys, torch; print('GPUMEM', torch.cuda.max_memory_allocated(), file=sys.stderr)"


def run_measured(cmd: list[str], *, stdout: list[str] | None = None,
                 env: dict[str, str] | None = None) -> tuple[float, float, float | None]:
    """(wall seconds, peak RSS in GiB, peak GPU memory in GiB or None) of one fresh process.

    Measured by GNU time around the command: a child forked from this (large) process would
    report our own RSS as its peak before it execs. `stdout`, when given, receives its output.
    """
    with open(os.devnull, "w") as null:
        r = subprocess.run(["/usr/bin/time", "-f", "BENCH %e %M", *cmd], cwd=ROOT, stderr=subprocess.PIPE,
                           stdout=subprocess.PIPE if stdout is not None else null, text=True, env=env)
    if stdout is not None:
        stdout.append(r.stdout)
    line = [x for x in r.stderr.splitlines() if x.startswith("BENCH ")]
    if r.returncode != 0 or not line:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    _, wall, kib = line[-1].split()
    gpu = [x for x in r.stderr.splitlines() if x.startswith("GPUMEM ")]
    return float(wall), int(kib) / 2**20, (int(gpu[-1].split()[1]) / 2**30 if gpu else None)


def _ok(cmd: list[str], env: dict[str, str] | None = None) -> None:
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-1000:]}{r.stderr[-2000:]}")


def medians(runs: dict[str, list], *, width: int) -> dict:
    """{step: median seconds, median peak RSS, every run} of each step's runs, printed one line a step."""
    results: dict = {}
    for n, rs in runs.items():
        results[n] = {"seconds": statistics.median(r[0] for r in rs),
                      "peak_rss_gib": statistics.median(r[1] for r in rs), "runs": [r[:2] for r in rs]}
        print(f"{n:{width}s} {results[n]['seconds']:7.2f} s  {results[n]['peak_rss_gib']:6.2f} GiB  "
              f"runs={[tuple(round(x, 2) for x in r[:2]) for r in rs]}", flush=True)
    return results


def settle(*cold: Path) -> None:
    """Before a timed step: `sync` (no dirty pages left from the step before), then drop the page-cache
    pages of every file under `cold` (POSIX_FADV_DONTNEED), so that a copy reads its source from disk
    whoever wrote it: the registry writes merged files with O_DIRECT (never cached), `cp` and peft
    write through the cache, and a warm source would favour whichever step happened to run after one."""
    subprocess.run(["sync"], check=True)
    for root in cold:
        for p in ([root] if root.is_file() else sorted(root.rglob("*"))):
            if p.is_file() and not p.is_symlink():
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def end_to_end(base: Path, adapter: Path, res_dir: Path, *, repeats: int, peft_cmd: list[str]) -> dict:
    """merge --out on a fresh catalog, a cache-hit merge --out, publish --to dir://, peft, cp -r; medians."""
    # the console script's own entry point, run from this checkout (an installed copy may be older)
    cli = [sys.executable, "-m", "registry"]
    home, out, hit, pub, peft_out = (res_dir / n for n in ("e2e-home", "e2e-out", "e2e-hit", "e2e-pub", "out"))
    # cp-merged-sync: `cp -r` then `sync`, the floor for a copy that is on disk when it returns (the
    # registry fsyncs what it writes before renaming it into place; cp and peft's save_pretrained do not)
    names = ("cp-base", "peft", "merge-out", "cp-merged", "cp-merged-sync", "merge-out-hit", "publish-dir")
    runs: dict[str, list] = {n: [] for n in names}
    engine_s: list[float] = []
    for _ in range(repeats):
        for d in (home, out, hit, pub, peft_out):
            shutil.rmtree(d, ignore_errors=True)
        h = [*cli, "--home", str(home)]
        _ok([*h, "base", "add", str(base), "--name", "bench-base"])
        _ok([*h, "push", str(adapter), "--name", "bench/bot", "--base", "bench-base"])
        subprocess.run(["sync"], check=True)
        runs["cp-base"].append(run_measured(["cp", "-r", str(base), str(peft_out)]))
        shutil.rmtree(peft_out)
        subprocess.run(["sync"], check=True)
        runs["peft"].append(run_measured(peft_cmd))
        shutil.rmtree(peft_out)
        subprocess.run(["sync"], check=True)
        printed: list[str] = []
        runs["merge-out"].append(run_measured([*h, "merge", "bench/bot@1", "--out", str(out), "--json"],
                                              stdout=printed))
        engine_s.append(json.loads(printed[-1])["validation"]["seconds"])
        settle(out)
        runs["cp-merged"].append(run_measured(["cp", "-r", str(out), str(peft_out)]))
        shutil.rmtree(peft_out)
        settle(out)
        runs["cp-merged-sync"].append(run_measured(["sh", "-c", f"cp -r '{out}' '{peft_out}' && sync"]))
        settle(home)
        runs["merge-out-hit"].append(run_measured([*h, "merge", "bench/bot@1", "--out", str(hit)]))
        settle(home)
        runs["publish-dir"].append(run_measured([*h, "publish", "bench/bot@1", "--to", f"dir://{pub}", "--force",
                                                 "--inline"]))
    results = medians(runs, width=14)
    results["engine_seconds"] = statistics.median(engine_s)
    m, p = results["merge-out"], results["peft"]
    def ratio(a: float, b: float) -> float | None:  # None where the floor rounds to 0 s (a reflink cp)
        return a / b if b else None

    results["ratios"] = {
        "merge-out/peft time": ratio(m["seconds"], p["seconds"]),
        "merge-out/peft rss": ratio(m["peak_rss_gib"], p["peak_rss_gib"]),
        "merge-out/engine": ratio(m["seconds"], results["engine_seconds"]),
        "merge-out-hit/cp-merged": ratio(results["merge-out-hit"]["seconds"], results["cp-merged"]["seconds"]),
        "publish-dir/cp-merged": ratio(results["publish-dir"]["seconds"], results["cp-merged"]["seconds"]),
        "merge-out-hit/cp-merged-sync": ratio(results["merge-out-hit"]["seconds"],
                                              results["cp-merged-sync"]["seconds"]),
        "publish-dir/cp-merged-sync": ratio(results["publish-dir"]["seconds"], results["cp-merged-sync"]["seconds"])}
    print(f"engine (in the merge)  {results['engine_seconds']:.2f} s")
    for k, v in results["ratios"].items():
        print(f"{k:26s} " + ("n/a (the floor took 0 s)" if v is None else f"{v:.2f}x"))
    for d in (home, out, hit, pub, peft_out):
        shutil.rmtree(d, ignore_errors=True)
    return results


UPLOAD = """import sys, boto3, pathlib
from boto3.s3.transfer import TransferConfig
root, bucket, prefix = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
c = boto3.client("s3", endpoint_url=sys.argv[4])
cfg = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20)
for p in sorted(root.rglob("*")):
    if p.is_file():
        c.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(root).as_posix()}", Config=cfg)
"""


def s3_mode(base: Path, adapter: Path, res_dir: Path, *, repeats: int, peft_cmd: list[str]) -> dict:
    """merge into an S3 store and publish --to s3:// against peft + a boto3 upload; medians."""
    import uuid

    import boto3
    from moto.server import ThreadedMotoServer

    creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(creds)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint)
    cli = [sys.executable, "-m", "registry"]
    home, peft_out = res_dir / "s3-home", res_dir / "out"
    names = ("peft", "upload-peft-out", "merge-s3", "publish-s3")
    runs: dict[str, list] = {n: [] for n in names}
    engine_s: list[float] = []
    try:
        for _ in range(repeats):
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(peft_out, ignore_errors=True)
            store, ship = f"store-{uuid.uuid4().hex[:8]}", f"ship-{uuid.uuid4().hex[:8]}"
            for b in (store, ship):
                client.create_bucket(Bucket=b)
            env = {**os.environ, "ADAPTER_REGISTRY_STORE": f"s3://{store}/reg",
                   "ADAPTER_REGISTRY_S3_ENDPOINT": endpoint}
            h = [*cli, "--home", str(home)]
            _ok([*h, "base", "add", str(base), "--name", "bench-base"], env)
            _ok([*h, "push", str(adapter), "--name", "bench/bot", "--base", "bench-base"], env)
            subprocess.run(["sync"], check=True)
            runs["peft"].append(run_measured(peft_cmd))
            runs["upload-peft-out"].append(run_measured([sys.executable, "-c", UPLOAD, str(peft_out), ship, "peft",
                                                         endpoint]))
            subprocess.run(["sync"], check=True)
            printed: list[str] = []
            runs["merge-s3"].append(run_measured([*h, "merge", "bench/bot@1", "--json"], stdout=printed, env=env))
            engine_s.append(json.loads(printed[-1])["validation"]["seconds"])
            runs["publish-s3"].append(run_measured([*h, "publish", "bench/bot@1", "--to", f"s3://{ship}/merged",
                                                    "--force", "--inline"], env=env))
            for b in (store, ship):  # moto keeps objects in this process's memory
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=b):
                    for o in page.get("Contents", []):
                        client.delete_object(Bucket=b, Key=o["Key"])
                client.delete_bucket(Bucket=b)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(peft_out, ignore_errors=True)
    results = medians(runs, width=16)
    results["engine_seconds"] = statistics.median(engine_s)
    peft_up = results["peft"]["seconds"] + results["upload-peft-out"]["seconds"]
    results["ratios"] = {
        "merge-s3/(peft+upload) time": results["merge-s3"]["seconds"] / peft_up,
        "merge-s3/peft rss": results["merge-s3"]["peak_rss_gib"] / results["peft"]["peak_rss_gib"],
        "merge-s3/engine": results["merge-s3"]["seconds"] / results["engine_seconds"],
        "publish-s3/upload": results["publish-s3"]["seconds"] / results["upload-peft-out"]["seconds"]}
    print(f"engine (in the merge)  {results['engine_seconds']:.2f} s")
    for k, v in results["ratios"].items():
        print(f"{k:30s} {v:.2f}x")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="1b")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", default="cp,peft-raw,peft,streaming")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]: where peft and the streaming engine compute")
    ap.add_argument("--e2e", action="store_true", help="the CLI end to end (merge --out, cache hit, publish)")
    ap.add_argument("--s3", action="store_true", help="the CLI end to end into an S3 store (moto on loopback)")
    args = ap.parse_args()
    dev = args.device
    tail = GPU_PEAK if dev.startswith("cuda") else ""
    s = SIZES[args.size]
    res_dir = args.results
    base = build_base(res_dir / f"base-{args.size}", s)
    adapter = build_adapter(res_dir / f"adapter-{args.size}", base, s)
    out = res_dir / "out"
    py = sys.executable
    cmds = {
        "cp": ["cp", "-r", str(base), str(out)],
        "peft": [py, "-c", f"from registry.merge import merge; merge({str(base)!r}, {str(adapter)!r}, "
                           f"{str(out)!r}, engine='peft', device={dev!r})" + tail],
        # peft's own four calls and nothing else (no manifest, no tokenizer copy, no checks)
        "peft-raw": [py, "-c", "import torch; from transformers import AutoModelForCausalLM; "
                               "from peft import PeftModel; "
                               f"m = AutoModelForCausalLM.from_pretrained({str(base)!r}, dtype=torch.bfloat16"
                               + (f", device_map={dev!r}" if dev != "cpu" else "") + "); "
                               f"PeftModel.from_pretrained(m, {str(adapter)!r}).merge_and_unload()"
                               f".save_pretrained({str(out)!r})" + tail],
        "streaming": [py, "-c", f"from registry.merge import merge; merge({str(base)!r}, {str(adapter)!r}, "
                                f"{str(out)!r}, engine='streaming', device={dev!r})" + tail],
    }
    subprocess.run(["cat", *map(str, sorted(base.glob("*.safetensors")))], stdout=subprocess.DEVNULL, check=True)
    if args.e2e or args.s3:
        mode = s3_mode if args.s3 else end_to_end
        results = mode(base, adapter, res_dir, repeats=args.repeats, peft_cmd=cmds["peft-raw"])
        results["setup"] = {"size": args.size, "parameters": sum(int(np.prod(sh)) for _, sh in _shapes(s)),
                            "dtype": "bfloat16", "rank": 16, "cpus": os.cpu_count(), "repeats": args.repeats,
                            "loadavg": os.getloadavg()}
        print(f"parameters {results['setup']['parameters'] / 1e6:.0f}M, load average {os.getloadavg()}")
        (res_dir / f"merge-{'s3' if args.s3 else 'e2e'}-{args.size}.json").write_text(json.dumps(results, indent=2))
        return
    results = {}
    for name in args.engines.split(","):
        runs = []
        for _ in range(args.repeats):
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run(["sync"], check=True)
            runs.append(run_measured(cmds[name]))
        shutil.rmtree(out, ignore_errors=True)
        gpu = [r[2] for r in runs if r[2] is not None]
        results[name] = {"seconds": statistics.median(r[0] for r in runs),
                         "peak_rss_gib": statistics.median(r[1] for r in runs),
                         "peak_gpu_gib": statistics.median(gpu) if gpu else None, "runs": runs}
        print(f"{name:10s} {results[name]['seconds']:7.2f} s  {results[name]['peak_rss_gib']:6.2f} GiB"
              + (f"  GPU {results[name]['peak_gpu_gib']:6.2f} GiB" if gpu else "")
              + f"  runs={[tuple(round(x, 2) if x is not None else None for x in r) for r in runs]}", flush=True)
    for ref in ("peft-raw", "peft"):
        if ref in results and "streaming" in results:
            ratio = {"time": results["streaming"]["seconds"] / results[ref]["seconds"],
                     "rss": results["streaming"]["peak_rss_gib"] / results[ref]["peak_rss_gib"]}
            if results["streaming"]["peak_gpu_gib"] and results[ref]["peak_gpu_gib"]:
                ratio["gpu"] = results["streaming"]["peak_gpu_gib"] / results[ref]["peak_gpu_gib"]
                print(f"streaming/{ref}: peak GPU memory {ratio['gpu']:.2f}x")
            results[f"streaming/{ref}"] = ratio
            print(f"streaming/{ref}: time {ratio['time']:.2f}x, peak RSS {ratio['rss']:.2f}x")
    params = sum(int(np.prod(sh)) for _, sh in _shapes(s))
    if "cp" in results and "streaming" in results:
        results["streaming/cp"] = {"time": results["streaming"]["seconds"] / results["cp"]["seconds"]}
        print(f"streaming/cp: time {results['streaming/cp']['time']:.2f}x")
    results["setup"] = {"size": args.size, "device": dev, "parameters": params, "dtype": "bfloat16", "rank": 16,
                        "cpus": os.cpu_count(), "repeats": args.repeats}
    (res_dir / f"merge-{args.size}-{dev.replace(':', '')}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
