"""adapter-registry: a catalog of LoRA/PEFT adapters that turns them into shippable models.

    from registry import Registry, Settings
    reg = Registry(Settings.from_env())
    reg.push("out/adapter", name="team-a/support-bot", base="llama-3-8b")
    path = reg.resolve("team-a/support-bot@production")   # PeftModel.from_pretrained(base, path)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from registry.app import Registry
    from registry.client import Client
    from registry.errors import RegistryError
    from registry.settings import Settings

__version__ = "0.1.0"

__all__ = ["Registry", "RegistryError", "Settings", "Client", "__version__"]

# The public names are imported on first use: importing any registry module imports this package
# first, and `adapter-registry --help` must not pay for SQLAlchemy (Registry) or httpx (Client).
_LAZY = {
    "Registry": "registry.app",
    "RegistryError": "registry.errors",
    "Settings": "registry.settings",
    "Client": "registry.client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
