"""GGUF files made with llama.cpp's own converters, at the pinned version, in llama.cpp's environment.

- the base: convert_hf_to_gguf.py BASE --outtype T --outfile F
- a LoRA adapter: convert_lora_to_gguf.py ADAPTER --base BASE --outtype T --outfile F
Each runs as a subprocess under the engine's venv (torch, transformers, gguf-py of the same tree).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from registry.errors import EngineFailed

from .install import EngineEnv

OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def _convert(env: EngineEnv, argv: list[str], out: Path, what: str) -> float:
    assert env.python and env.converters
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    argv = [a if a != "{out}" else str(tmp) for a in argv]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    child_env["HF_HUB_OFFLINE"] = "1"
    t = time.monotonic()
    proc = subprocess.run([env.python, *argv], capture_output=True, text=True, env=child_env,
                          cwd=env.converters)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "ERROR" in ln or "Error" in ln]
        tail = lines[-3:] or (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise EngineFailed(f"llama.cpp {what} conversion failed (exit {proc.returncode}): " + " | ".join(tail)[-800:])
    tmp.replace(out)
    return time.monotonic() - t


def convert_base(env: EngineEnv, base_dir: Path, out: Path, *, outtype: str = "f32") -> float:
    """The base model (or a merged model) as one GGUF; returns the seconds it took."""
    script = str(Path(env.converters or "") / "convert_hf_to_gguf.py")
    return _convert(env, [script, str(base_dir), "--outtype", outtype, "--outfile", "{out}"], out, "model")


def convert_lora(env: EngineEnv, adapter_dir: Path, base_dir: Path, out: Path, *, outtype: str = "f32") -> float:
    """A PEFT LoRA folder as a GGUF LoRA adapter of `base_dir`; returns the seconds it took."""
    script = str(Path(env.converters or "") / "convert_lora_to_gguf.py")
    return _convert(env, [script, str(adapter_dir), "--base", str(base_dir), "--outtype", outtype,
                          "--outfile", "{out}"], out, "LoRA")
