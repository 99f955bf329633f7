"""A resolved adapter folder that loads offline: its adapter_config.json names the base's local folder.

An adapter's config keeps the Hub id (or the path) of the base it was trained on, so
`AutoPeftModelForCausalLM.from_pretrained(folder)` goes to the network for it. When the version's
base is registered and on this machine, resolve hands out a copy whose adapter_config.json has
`base_model_name_or_path` rewritten to that folder; every other file is the stored blob. The
catalog (and the config `show` returns) keeps the original, and the merge and verify code read the
blob-identical folder (`resolve.adapter_folder`), never this one.

The rewritten config is not a blob of the store: it is derived from the verified config blob and
the base folder, so its bytes (and digest) are known before the folder is built. The folder is
sealed (storage/cache.py) for exactly these files, the rewritten config's digest included, its
name is that seal, and the config is re-hashed before an existing folder is trusted: an edited
config (in place, at the same size) makes the next resolve rebuild the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from registry.errors import InvalidAdapter
from registry.storage.cache import Fetches, cached_verified, materialize, seal_of
from registry.storage.fsutil import temp_name

CONFIG = "adapter_config.json"
KEY = "base_model_name_or_path"


def rewritten_config(original: bytes, base_dir: Path) -> bytes:
    """`original` (an adapter_config.json) with base_model_name_or_path set to `base_dir`, as peft writes it."""
    try:
        cfg = json.loads(original)
    except ValueError as e:
        raise InvalidAdapter(f"{CONFIG} is not valid JSON ({e})") from e
    if not isinstance(cfg, dict):
        raise InvalidAdapter(f"{CONFIG} is not a JSON object")
    cfg[KEY] = str(base_dir)
    return (json.dumps(cfg, indent=2, sort_keys=True) + ("\n" if original.endswith(b"\n") else "")).encode()


def names_base(original: bytes, base_dir: Path) -> bool:
    """Whether the stored config already names `base_dir` (then the stored folder is the loadable one)."""
    try:
        cfg = json.loads(original)
    except ValueError:
        return False
    return isinstance(cfg, dict) and cfg.get(KEY) == str(base_dir)


class _WithDerived:
    """The store, plus files derived here (known bytes, known digest) that the store does not hold."""

    def __init__(self, store: Fetches, derived: Mapping[str, bytes]):
        self.store, self.derived = store, dict(derived)

    def fetch(self, digest: str, dest: Path) -> None:
        data = self.derived.get(digest)
        if data is None:
            self.store.fetch(digest, dest)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / temp_name(f".{dest.name}.")
        tmp.write_bytes(data)
        os.replace(tmp, dest)


def with_local_base(store: Fetches, files: Mapping[str, str], root: Path, *, cache_root: Path,
                    sizes: Mapping[str, int], base_dir: Path) -> Path | None:
    """A sealed folder under `root` with `files` ({relative path: digest}), adapter_config.json rewritten
    to name `base_dir` (files must hold one); None when the stored config names it already.

    Raises:
        BlobNotFound, IntegrityFailure: a blob is missing or corrupt (as materialize)
        InvalidAdapter: the stored config is not a JSON object
    """
    original = cached_verified(store, files[CONFIG], cache_root).read_bytes()  # an in-place edit: fetched again
    if names_base(original, Path(base_dir)):
        return None
    config = rewritten_config(original, Path(base_dir))
    digest = hashlib.sha256(config).hexdigest()
    wanted = {**files, CONFIG: digest}
    return materialize(_WithDerived(store, {digest: config}), wanted, Path(root) / seal_of(wanted),
                       cache_root=cache_root, sizes={**sizes, CONFIG: len(config)}, sealed=True, hashed=[CONFIG])
