"""Opt-in conversion of pickle adapter weights to safetensors (ADAPTER_REGISTRY_ALLOW_PICKLE).

Uses torch's weights-only unpickler, which refuses anything but tensors and plain containers, so
a hostile pickle fails to load instead of running code. torch is imported only here, only when
the setting is on and a folder has no safetensors weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from registry.errors import UnsafeFormat

PICKLE_WEIGHTS = ("adapter_model.bin", "adapter_model.pt")


def needs_conversion(folder: Path) -> Path | None:
    if (folder / "adapter_model.safetensors").is_file():
        return None
    return next((folder / n for n in PICKLE_WEIGHTS if (folder / n).is_file()), None)


def convert_folder(folder: Path, dest: Path) -> Path:
    """Copy `folder` to `dest` with its pickle weights converted to adapter_model.safetensors."""
    src = needs_conversion(folder)
    if src is None:
        return folder
    import torch
    from safetensors.torch import save_file

    try:
        sd = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UnsafeFormat(f"{src.name}: refused by torch's weights-only loader ({e.__class__.__name__})",
                           path=str(src)) from e
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UnsafeFormat(f"{src.name}: not a plain state dict of tensors", path=str(src))
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns(*PICKLE_WEIGHTS, "*.pt", "*.pth", "*.bin"))
    save_file({k: v.contiguous() for k, v in sd.items()}, dest / "adapter_model.safetensors",
              metadata={"format": "pt", "converted_from": src.name})
    return dest
