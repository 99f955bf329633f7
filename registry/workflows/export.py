"""Export a version for a serving engine: `export REF --format gguf --out DIR [--merged] [--type T]`.

GGUF is made with llama.cpp's own converters at the pinned version (registry/engines/gguf.py), in
llama.cpp's environment: a LoRA adapter file (convert_lora_to_gguf.py) for use with the base's GGUF,
or, with `merged`, the merged model (registry/workflows/merge.py, then convert_hf_to_gguf.py).
What the converter cannot express is refused first, with the rule (registry/engines/preflight/
llama_cpp.py: rsLoRA and alpha_pattern scaling, DoRA, embeddings / modules_to_save, ...): such an
adapter would convert without an error and run mis-scaled. The file's sha256 is recorded in the
audit log and the events outbox ("export.create"), with the base fingerprint and converter version.
"""

from __future__ import annotations

import time
from pathlib import Path

from registry import types as T
from registry.catalog import commands as C
from registry.catalog import convert
from registry.catalog import queries as Q
from registry.core import Core
from registry.errors import AlreadyExists, BaseModelNotFound, InvalidInput
from registry.refs import parse_ref
from registry.workflows.resolve import adapter_folder, base_folder

FORMATS = ("gguf",)
TYPES = ("f32", "f16", "bf16", "q8_0")


def export(core: Core, ref: str, *, fmt: str, out: Path, merged: bool = False, outtype: str = "f32",
           engines_dir: str | None = None) -> T.Export:
    """Convert NAME@REF and write one file into `out` (a folder, created when missing).

    Raises:
        InvalidInput: an unknown format or type, or an adapter the converter cannot express (the
            reason names the llama.cpp rule; the hint says what to do instead)
        AlreadyExists: the file is already there
    """
    from registry.engines import gguf, install, preflight
    from registry.engines.preflight import llama_cpp
    from registry.storage.digest import sha256_file

    if fmt not in FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}: choose from {', '.join(FORMATS)}")
    if outtype not in TYPES:
        raise InvalidInput(f"unknown GGUF type {outtype!r}: choose from {', '.join(TYPES)}")
    with core.db.read() as s:
        adapter, row = Q.get_version(s, parse_ref(ref))
        base = row.base_model
        if base is None:
            raise BaseModelNotFound(f"{ref} has no base model recorded; register it against its base first")
        canonical, base_ref, base_text = f"{adapter.name}@{row.version}", convert.base_ref(base), \
            f"{base.name}@{base.fingerprint}"
    adapter_dir, base_dir = adapter_folder(core, canonical), base_folder(core, base_text)
    verdict = llama_cpp.check(preflight.facts_from_folders(adapter_dir, base_dir), merged=merged)
    if not verdict.ok:
        raise InvalidInput(f"llama.cpp {verdict.version} cannot express {canonical}: {'; '.join(verdict.reasons)}",
                           hint=verdict.fix)
    env = install.require("llama.cpp", install.engines_dir(engines_dir or core.settings.engines_dir))
    name = f"{adapter.name.replace('/', '--')}-v{row.version}-{'merged' if merged else 'lora'}-{outtype}.gguf"
    target = Path(out) / name
    if target.exists():
        raise AlreadyExists(f"{target} already exists", path=str(target))
    t0 = time.monotonic()
    if merged:
        from registry.workflows import merge as merge_wf

        m = merge_wf.merge(core, canonical, dtype="float32", engine="auto", device="cpu", validate=False, out=None,
                           max_shard_size="5GB", progress=None)
        assert m.path is not None
        gguf.convert_base(env, Path(m.path), target, outtype=outtype)
    else:
        gguf.convert_lora(env, adapter_dir, base_dir, target, outtype=outtype)
    seconds = time.monotonic() - t0
    digest, size = sha256_file(target), target.stat().st_size
    with core.db.write() as s:
        C.record(s, core.actor, "export.create", canonical,
                 {"format": fmt, "type": outtype, "merged": merged, "digest": digest, "size": size,
                  "converter": "llama.cpp", "converter_version": env.version, "base": base_ref.fingerprint})
    return T.Export(canonical, base_ref, fmt, outtype, merged, "llama.cpp", env.version, digest, size, target, seconds)
