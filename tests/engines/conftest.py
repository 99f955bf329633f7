"""End-to-end tests against the real engines (vLLM, llama.cpp) on CPU: `make test-engines`.

They need the engine environments (minutes to build, gigabytes), so they run only when asked for
with `-m engines` (or ADAPTER_REGISTRY_TEST_ENGINES=1); `make test` skips them. The environments
are built on first use into the engines folder (ADAPTER_REGISTRY_ENGINES_DIR, else
~/.cache/adapter-registry/engines) and reused after that.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _asked_for(config) -> bool:
    return "engines" in (config.getoption("-m") or "") or os.environ.get("ADAPTER_REGISTRY_TEST_ENGINES") == "1"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="engine tests run with `make test-engines` (-m engines)")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.engines)
            if not _asked_for(config):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def engines_root() -> Path:
    from registry.engines.install import engines_dir

    return engines_dir()


def _env(engine: str, root: Path):
    from registry.engines import install

    return install.install(engine, root, progress=lambda m: print(f"[{engine}] {m}", flush=True))


@pytest.fixture(scope="session")
def vllm_env(engines_root):
    return _env("vllm", engines_root)


@pytest.fixture(scope="session")
def llama_env(engines_root):
    return _env("llama.cpp", engines_root)


@pytest.fixture(scope="session")
def engine_llama(models_dir) -> Path:
    """A tiny Llama every engine takes (vocabulary = tokenizer, head size vLLM's CPU attention has)."""
    from registry.engines.tiny import build_llama

    return build_llama(models_dir / "engine-llama")


@pytest.fixture(scope="session")
def engine_adapter(models_dir, engine_llama) -> Path:
    from registry.testing.tiny import build_adapter

    return build_adapter(engine_llama, models_dir / "engine-adapter", r=8, seed=11)
