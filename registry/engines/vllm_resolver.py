"""The registry as vLLM's adapter source: a LoRAResolver for `model="team-a/bot@production"`.

Installed with the `adapter-registry[vllm]` extra into vLLM's environment, whose
`vllm.general_plugins` entry point (`adapter-registry = registry.engines.vllm_resolver:register`)
vLLM calls at start-up. A request naming a LoRA vLLM does not have (and
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True) reaches `resolve_lora`, which asks the registry, through its
own command line (`ADAPTER_REGISTRY_CLI`, default `adapter-registry`; local catalog, or the remote
one with ADAPTER_REGISTRY_REMOTE and ADAPTER_REGISTRY_TOKEN, as the CLI reads them):
1. `show REF --json`: the version, and whether its newest vLLM verification against its base
   passed (ADAPTER_REGISTRY_VLLM_ALLOW_UNVERIFIED=1 relaxes this);
2. `resolve REF`: a local folder with the version's files, each verified against its digest.
This module imports nothing from vLLM or the registry at import time, and never the catalog: the
registry's CLI runs in its own process and environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import zlib
from typing import Any


def _cli() -> list[str]:
    return shlex.split(os.environ.get("ADAPTER_REGISTRY_CLI", "adapter-registry"))


async def _run(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = await asyncio.create_subprocess_exec(*_cli(), *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise LookupError(err.decode(errors="replace").strip().splitlines()[0:1] or [f"exit {proc.returncode}"])
    return out.decode()


def vllm_verified(shown: dict[str, Any]) -> tuple[bool, str]:
    """Whether the newest vLLM verification of the version against its own base passed (pure)."""
    base = (shown.get("base") or {}).get("fingerprint")
    for v in shown.get("verifications") or []:  # newest first, as show lists them
        if (v.get("versions") or {}).get("engine") == "vllm" and (v.get("base") or {}).get("fingerprint") == base:
            return bool(v.get("passed")), "passed" if v.get("passed") else "its latest vLLM verification failed"
    return False, "it has no vLLM verification against its base"


class RegistryResolver:
    """vllm.lora.resolver.LoRAResolver over the registry (subclassed at registration, when vLLM is there)."""

    async def resolve_lora(self, base_model_name: str, lora_name: str) -> Any:
        from vllm.lora.request import LoRARequest  # type: ignore[import-not-found]

        if "@" not in lora_name:
            return None  # not a registry reference (NAME@VERSION or NAME@ALIAS): another resolver's
        try:
            shown = json.loads(await _run("show", lora_name, "--json"))
        except LookupError:
            return None
        ok, why = vllm_verified(shown)
        if not ok and os.environ.get("ADAPTER_REGISTRY_VLLM_ALLOW_UNVERIFIED") != "1":
            import logging

            logging.getLogger(__name__).warning("adapter-registry: not serving %s: %s", lora_name, why)
            return None
        folder = (await _run("resolve", lora_name)).strip().splitlines()[-1]
        return LoRARequest(lora_name=lora_name, lora_int_id=zlib.crc32(lora_name.encode()) or 1, lora_path=folder)


def register() -> None:
    """The `vllm.general_plugins` entry point: register the resolver with vLLM."""
    from vllm.lora.resolver import LoRAResolver, LoRAResolverRegistry  # type: ignore[import-not-found]

    cls = type("AdapterRegistryResolver", (RegistryResolver, LoRAResolver), {})
    if "adapter-registry" not in LoRAResolverRegistry.get_supported_resolvers():
        LoRAResolverRegistry.register_resolver("adapter-registry", cls())
