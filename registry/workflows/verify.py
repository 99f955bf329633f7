"""Verify a version: the static check against its base, then the dynamic checks on a device.

`run()` does the work and returns what to record; the caller decides where the record is
written: `Registry.verify()` writes it at once, the verify job writes it inside the queue's
guarded finish (so a rescued worker's late result records nothing). registry/gates.py says what
a recorded verification counts for.

`engine="vllm"` or `"llama.cpp"` (registry/verify/engine.py): after the static check, the engine's
preflight rules (registry/engines/preflight/); then the engine itself, in its pinned environment,
as a subprocess, generates greedy tokens for the probe prompts with and without the adapter, and
they must equal peft's on the same device. The verification is recorded with the engine and its
version (columns `engine`, `engine_version`), so one version has one verdict per (base
fingerprint, engine, engine version, device kind, dtype).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from registry import dtypes
from registry import types as T
from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.catalog.rows import row as need
from registry.core import Core
from registry.errors import BaseModelNotFound
from registry.refs import parse_ref
from registry.workflows.push import check
from registry.workflows.resolve import adapter_folder, base_folder

Stage = Callable[[str], None]


@dataclass(frozen=True)
class Result:
    """One verification, ready to be recorded (`record`) and reported (`to_dict`)."""

    ref: str
    version_id: int
    base_id: int
    passed: bool
    reasons: tuple[str, ...]
    device_kind: str
    dtype: str
    figures: dict[str, Any]
    duration_s: float
    versions: dict[str, Any] = field(default_factory=dict)
    engine: str = "peft"
    engine_version: str | None = None

    def record(self, s: Session, *, job_id: int | None = None) -> M.Verification:
        row = M.Verification(version_id=self.version_id, base_model_id=self.base_id, device_kind=self.device_kind,
                             dtype=self.dtype, versions=self.versions, passed=self.passed, figures=self.figures,
                             duration_s=self.duration_s, job_id=job_id, engine=self.engine,
                             engine_version=self.engine_version)
        s.add(row)
        verified_event(s, self.version_id, passed=self.passed, engine=self.engine, engine_version=self.engine_version,
                       base_id=self.base_id, dtype=self.dtype)
        return row

    def to_dict(self) -> dict[str, Any]:
        """The verify job's result."""
        return {"ref": self.ref, "passed": self.passed, "reasons": list(self.reasons), "device_kind": self.device_kind,
                "dtype": self.dtype, "figures": self.figures, "duration_s": self.duration_s, "engine": self.engine,
                "engine_version": self.engine_version}


def verified_event(s: Session, version_id: int, *, passed: bool, engine: str, engine_version: str | None,
                   base_id: int | None, dtype: str) -> None:
    """A `version.verify` event (subject NAME@VERSION) beside each recorded verification, in the same
    transaction: what `deploy --follow` (and webhooks) react to when a version becomes verified."""
    base = s.get(M.BaseModelRow, base_id) if base_id is not None else None
    v = s.get(M.AdapterVersion, version_id)
    subject = f"{v.adapter.name}@{v.version}" if v is not None else str(version_id)
    s.add(M.Event(kind="version.verify", subject=subject,
                  payload={"passed": passed, "engine": engine, "engine_version": engine_version, "dtype": dtype,
                           "base": base.fingerprint if base else None}))


def run(core: Core, ref: str, *, base: str | None = None, dtype: str | None = None, device: str = "cpu",
        models: Any = None, check_stop: Callable[[], None] | None = None, stage: Stage | None = None,
        engine: str = "peft", engines_dir: str | None = None, serving: dict[str, Any] | None = None) -> Result:
    """Static check, then (when it passes) the dynamic checks with the base from `models`.

    Args:
        engine: "peft" (the reference: merged equals unmerged), or a serving engine ("vllm",
            "llama.cpp") whose output must equal peft's
        engines_dir: where the engine environments are (registry/engines/install.py)
        serving: the engine's serving configuration to verify under (vllm: {"lora_target_modules":
            [...]}, the server's --lora-target-modules); recorded in the figures
        models: a registry.verify.cache.ModelCache (a worker's, so bases stay loaded); a fresh
            one on `device` when None
        check_stop: called between steps; raises to stop (a job's cancellation point)
        stage: told the name of each step ("static check", "load", "probe")
    """
    from registry import verify as V
    from registry.versions import library_versions

    say = stage or (lambda _s: None)
    say("static check")
    report = check(core, ref, base=base)
    with core.db.read() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        base_row = Q.get_base(s, base, namespace=Q.namespace_prefix(parse_ref(ref).name)) if base else row.base_model
        if base_row is None:
            raise BaseModelNotFound(f"{ref} has no base model recorded; pass --base NAME")
        vid, digest, bid = row.id, row.content_digest, base_row.id
        base_ref, base_fp = f"{base_row.name}@{base_row.fingerprint}", base_row.fingerprint
        out_dtype = dtypes.or_default(dtype, base_row.dtype)
    if engine != "peft":
        return _run_engine(core, ref, engine, report, vid=vid, bid=bid, digest=digest, base_ref=base_ref,
                           base_fp=base_fp, dtype=out_dtype, device=device, models=models, say=say,
                           engines_dir=engines_dir, serving=serving or {})
    if report.status == "fail":
        outcome = V.Outcome(False, {"static": report.status, "static_errors": list(report.errors)},
                            tuple(report.errors))
    else:
        say("load")
        adapter_dir, base_dir = adapter_folder(core, ref), base_folder(core, base_ref)
        if models is None:
            from registry.verify.cache import ModelCache

            models = ModelCache(device=device)
        say("probe")
        outcome = V.verify(base_dir, adapter_dir, cache=models, base_key=base_fp, adapter_key=digest,
                           dtype=out_dtype, check=check_stop)
        outcome.figures["static"] = report.status
    return Result(ref, vid, bid, outcome.passed, tuple(outcome.reasons), V.device_kind(device), out_dtype,
                  {**outcome.figures, "reasons": list(outcome.reasons)}, outcome.duration_s,
                  library_versions(device))


ENGINES = ("peft", "vllm", "llama.cpp")
# serving configuration a verification can be run under, per engine (the runner's request keys)
SERVING_OPTIONS = {"vllm": {"lora_target_modules"}}


def _run_engine(core: Core, ref: str, engine: str, report: Any, *, vid: int, bid: int, digest: str, base_ref: str,
                base_fp: str, dtype: str, device: str, models: Any, say: Stage, engines_dir: str | None,
                serving: dict[str, Any]) -> Result:
    import time

    from registry import verify as V
    from registry.engines import install, preflight
    from registry.errors import InvalidInput
    from registry.verify import engine as E
    from registry.versions import library_versions

    if engine not in ENGINES:
        raise InvalidInput(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    if device != "cpu":
        raise InvalidInput(f"engine verification runs on cpu here (the engine environments are CPU builds), "
                           f"not {device}", hint="bench/gpu.sh has the CUDA vLLM half")
    t0 = time.monotonic()
    env = install.require(engine, install.engines_dir(engines_dir or core.settings.engines_dir))
    versions = {**library_versions(device), "engine": engine, "engine_version": env.version}
    unknown = set(serving) - SERVING_OPTIONS.get(engine, set())
    if unknown:
        raise InvalidInput(f"unknown {engine} serving option(s): {', '.join(sorted(unknown))}")
    figures: dict[str, Any] = {"static": report.status, "serving": serving}
    reasons: list[str] = list(report.errors) if report.status == "fail" else []
    adapter_dir, base_dir = adapter_folder(core, ref), base_folder(core, base_ref)
    pre = preflight.check(engine, preflight.facts_from_folders(adapter_dir, base_dir))
    figures["preflight"] = pre.to_dict()
    reasons += [f"preflight {r}" for r in pre.reasons]
    if not reasons:
        say("probe")
        prompts = E.probe_token_ids(base_dir)
        if models is None:
            from registry.verify.cache import ModelCache

            models = ModelCache(device=device)
        ref_runs = E.reference(models, base_dir, adapter_dir, base_key=base_fp, adapter_key=digest, dtype=dtype,
                               prompts=prompts)
        say(engine)
        answer = engine_runs(core, engine, env, base_dir, base_fp, [(digest, adapter_dir)], prompts, dtype=dtype,
                             serving=serving)
        figs, why = E.judge(engine, ref_runs, answer.get("base"), answer["adapters"].get(digest), dtype=dtype,
                            refused=answer["errors"].get(digest))
        figures.update(figs)
        figures["engine_load_s"] = answer.get("load_s")
        figures["engine_wall_s"] = answer.get("wall_s")
        figures["engine_reported_version"] = answer.get("engine_version")
        reasons += why
    return Result(ref, vid, bid, not reasons, tuple(reasons), V.device_kind(device), dtype,
                  {**figures, "reasons": list(reasons)}, time.monotonic() - t0, versions, engine, env.version)


def engine_runs(core: Core, engine: str, env: Any, base_dir: Any, base_fp: str, adapters: list[tuple[str, Any]],
                prompts: list[list[int]], *, dtype: str, serving: dict[str, Any] | None = None) -> dict[str, Any]:
    """One engine process for a base and several adapters (the engine stays loaded across them)."""
    from pathlib import Path

    from registry.engines import gguf
    from registry.engines.run import run_runner
    from registry.verify.engine import MAX_TOKENS

    if engine == "vllm":
        import json

        ranks = []
        for _key, d in adapters:
            conf = json.loads((Path(d) / "adapter_config.json").read_text())
            ranks.append(max([int(conf.get("r") or 1), *[int(v) for v in (conf.get("rank_pattern") or {}).values()]]))
        from registry.release.serving import vllm_rank

        req = {"base": str(base_dir), "adapters": [{"key": k, "path": str(d)} for k, d in adapters],
               "prompts": prompts, "max_tokens": MAX_TOKENS, "dtype": dtype,
               "max_lora_rank": vllm_rank(max(ranks or [1])), **(serving or {})}
        return run_runner(env, req)
    outtype = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}[dtype]
    cache = Path(core.settings.cache_dir) / "gguf"
    base_gguf = cache / f"base-{base_fp[:32]}-{outtype}.gguf"
    converted: dict[str, Any] = {}
    if not base_gguf.is_file():
        converted["base_s"] = gguf.convert_base(env, Path(base_dir), base_gguf, outtype=outtype)
    ggufs, errors = [], {}
    for key, d in adapters:
        out = cache / f"lora-{key.replace(':', '_')[:40]}-{base_fp[:16]}-{outtype}.gguf"
        if not out.is_file():
            try:
                converted[key] = gguf.convert_lora(env, Path(d), Path(base_dir), out, outtype=outtype)
            except Exception as e:  # the converter's refusal is the engine's verdict on this adapter
                errors[key] = str(e)
                continue
        ggufs.append((key, out))
    server = str(Path(env.bin_dir or "") / "llama-server")
    answer = run_runner(env, {"server": server, "base": str(base_gguf), "prompts": prompts, "max_tokens": MAX_TOKENS,
                              "adapters": [{"key": k, "path": str(p)} for k, p in ggufs]})
    answer["errors"].update(errors)
    answer["converted_s"] = converted
    return answer


def verify(core: Core, ref: str, *, base: str | None, dtype: str | None, device: str, engine: str = "peft",
           engines_dir: str | None = None, serving: dict[str, Any] | None = None) -> T.Verification:
    """Run a verification in this process and record it; returns the recorded verification."""
    res = run(core, ref, base=base, dtype=dtype, device=device, engine=engine, engines_dir=engines_dir,
              serving=serving)
    with core.db.write() as s:
        row = res.record(s)
        s.flush()
        return convert.verification(row, res.ref, need(s, M.BaseModelRow, res.base_id))
