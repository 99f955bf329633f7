"""Base models kept loaded on a worker's device, with adapters hot-swapped onto them.

Verifying twenty adapters of one base should load the base once: each entry holds a base model
wrapped by peft, and `adapter()` loads an adapter into it (load_adapter / set_adapter) and
removes it afterwards (delete_adapter), so the base weights stay resident. Entries are evicted
least recently used first when a new base would not fit in `max_bytes`.

With `enabled=False` every call loads the base afresh and drops it afterwards (the baseline of
bench/verify.py). torch, transformers and peft are imported on first use only.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry import dtypes
from registry.errors import InvalidInput


@dataclass
class _Entry:
    model: Any  # a transformers model, or the PeftModel wrapping it once an adapter was loaded
    tokenizer: Any
    nbytes: int
    peft: Any = None
    adapters: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    resident: tuple[str, ...]
    resident_bytes: int


def default_budget(device: str) -> int:
    """Bytes of model weights a worker keeps resident: 70 % of the GPU, or 40 % of RAM on CPU."""
    if device.startswith("cuda"):
        import torch

        idx = torch.device(device).index or 0
        return int(torch.cuda.get_device_properties(idx).total_memory * 0.7)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.4)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


class ModelCache:
    """An LRU of loaded base models on one device, keyed by (base fingerprint, dtype)."""

    def __init__(self, *, device: str = "cpu", max_bytes: int | None = None, enabled: bool = True):
        self.device = device
        self.max_bytes = max_bytes if max_bytes is not None else default_budget(device)
        self.enabled = enabled
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self.hits = self.misses = self.evictions = 0

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.evictions, tuple(f"{k[0][:12]}/{k[1]}" for k in self._entries),
                          sum(e.nbytes for e in self._entries.values()))

    @contextlib.contextmanager
    def adapter(self, base_dir: Path, adapter_dir: Path, *, base_key: str, adapter_key: str,
                dtype: str) -> Iterator[tuple[Any, Any]]:
        """Yield (peft model with the adapter active, tokenizer); the adapter is removed afterwards."""
        with self._lock:  # one model, one forward at a time: the entry is mutated by the swap
            entry = self._base(Path(base_dir), base_key, dtype)
            name = "a_" + adapter_key.replace(":", "_").replace(".", "_")[:40]
            try:
                if entry.peft is None:
                    from peft import PeftModel

                    entry.peft = PeftModel.from_pretrained(entry.model, str(adapter_dir), adapter_name=name)
                elif name not in entry.peft.peft_config:
                    entry.peft.load_adapter(str(adapter_dir), adapter_name=name)
                entry.adapters.add(name)
                entry.peft.set_adapter(name)
                entry.peft.eval()
                yield entry.peft, entry.tokenizer
            finally:
                if entry.peft is not None and name in entry.peft.peft_config:
                    entry.peft.delete_adapter(name)
                entry.adapters.discard(name)
                if not self.enabled:
                    self.clear()

    def _base(self, base_dir: Path, key: str, dtype: str) -> _Entry:
        k = (key, dtype)
        if self.enabled and k in self._entries:
            self.hits += 1
            self._entries.move_to_end(k)
            return self._entries[k]
        self.misses += 1
        need = _estimate_bytes(base_dir, dtype)
        while self._entries and sum(e.nbytes for e in self._entries.values()) + need > self.max_bytes:
            self._entries.popitem(last=False)
            self.evictions += 1
            _free(self.device)
        entry = self._load(base_dir, dtype)
        self._entries[k] = entry
        return entry

    def _load(self, base_dir: Path, dtype: str) -> _Entry:
        import torch
        from transformers import AutoModelForCausalLM

        if dtype not in dtypes.CANONICAL:  # callers normalise with dtypes.canonical() first
            raise InvalidInput(f"dtype must be one of {dtypes.CANONICAL}, not {dtype!r}")
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=getattr(torch, dtype))
        model = model.to(self.device).eval()  # type: ignore[arg-type]  # transformers types .to() as its own call
        nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
        return _Entry(model=model, tokenizer=_tokenizer(base_dir), nbytes=nbytes)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            _free(self.device)


def _tokenizer(base_dir: Path):
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(base_dir)
    except (OSError, ValueError):
        return None  # no tokenizer: probes use fixed token ids


def _estimate_bytes(base_dir: Path, dtype: str) -> int:
    """Weights on disk scaled to the load dtype (good enough to decide evictions before loading)."""
    size = sum(p.stat().st_size for p in Path(base_dir).glob("*.safetensors"))
    return size // 2 if dtype in ("float16", "bfloat16") and _disk_dtype_is_32(base_dir) else size


def _disk_dtype_is_32(base_dir: Path) -> bool:
    import json

    try:
        cfg = json.loads((Path(base_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return True
    return (cfg.get("dtype") or cfg.get("torch_dtype") or "float32") == "float32"


def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
