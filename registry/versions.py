"""`library_versions()`: the one record of which libraries (and which GPU) produced a result.

Read from package metadata, so asking does not import torch; only `device="cuda..."` imports it,
to name the CUDA build and the GPU.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

LIBRARIES = ("adapter-registry", "torch", "transformers", "peft", "safetensors", "huggingface_hub")


def library_versions(device: str | None = None, *, libraries: tuple[str, ...] = LIBRARIES) -> dict[str, Any]:
    """{library: version or None}, plus "cuda" and "gpu" when `device` is a CUDA device."""
    out: dict[str, Any] = {}
    for lib in libraries:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = None
    if device is not None and device.startswith("cuda"):
        import torch

        out["cuda"] = torch.version.cuda
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return out
