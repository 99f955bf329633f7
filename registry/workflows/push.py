"""Registering things: adapter versions (push), base models (add_base), static checks (check).

Nothing is stored when a check fails: the folder is inspected and checked against its base
first, then its files go through workflows.ingest, then one write transaction records the
version (its number taken race-free in catalog.commands.create_version).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry import types as T
from registry.adapters.basemodel import fingerprint_base, read_card
from registry.adapters.compat import check_compat
from registry.adapters.hfcache import check_hub_id
from registry.adapters.inspect import AdapterManifest, check_name, inspect_adapter, training_record
from registry.adapters.outputs import DEFAULT_ADAPTER, adapters_in, pick, registry_names
from registry.adapters.validate import Finding, raise_findings
from registry.adapters.validate.against_base import check_targets, check_vocab
from registry.catalog import commands as C
from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.core import Core
from registry.errors import BaseModelNotFound, Conflict, Incompatible, InvalidName
from registry.refs import parse_ref
from registry.workflows.ingest import ingest
from registry.workflows.resolve import adapter_folder

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def add_base(core: Core, path: Path, *, name: str, revision: str | None, store_weights: bool, full_hash: bool,
             progress: Progress | None, hub_id: str | None = None) -> T.BaseModel:
    """Register a local Hugging Face model folder by fingerprint (weights stored only when asked),
    with its Hub id when known and what its model card (README.md) says."""
    check_name(name)
    if hub_id is not None:
        check_hub_id(hub_id)
    fp = fingerprint_base(Path(path), revision=revision, full_hash=full_hash or store_weights,
                          max_header_bytes=core.settings.max_header_bytes)
    card = read_card(fp.folder)
    if store_weights:
        ingest(core, {fp.folder / rel: (info.get("digest"), info["size"]) for rel, info in fp.files.items()},
               progress=progress)
    with core.db.write() as s:
        row, created = C.register_base(s, fp, name=name, actor=core.actor, location=str(fp.folder),
                                       weights_stored=store_weights, hub_id=hub_id, card=card)
        return convert.base_model(row, created=created)


def push(core: Core, path: Path, *, name: str, base: str | None, tags: Mapping[str, str], description: str,
         progress: Progress | None, checkpoint: str | None = None, adapter: str | None = None) -> T.AdapterVersion:
    """Register an adapter folder (PEFT or Trainer/TRL output) as a new immutable version.

    `checkpoint` (last | best | N) and `adapter` (a name of a multi-adapter save) choose which
    adapter of the folder (registry.adapters.outputs.pick); the result's `training` says which
    checkpoint was taken and which files the training record came from.
    """
    check_name(name)
    with tempfile.TemporaryDirectory(prefix="adapter-registry-push-") as tmp:
        manifest = _inspect(core, Path(path), Path(tmp), checkpoint=checkpoint, adapter=adapter)
        base_row, compat, note = _check(core, manifest, name=name, base=base)
        return _record(core, manifest, name=name, base_row=base_row, compat=compat, tags=tags,
                       description=description, progress=progress, base_note=note)


def push_all(core: Core, path: Path, *, name: str, base: str | None, tags: Mapping[str, str], description: str,
             progress: Progress | None, checkpoint: str | None = None,
             names: Mapping[str, str] | None = None) -> T.MultiPush:
    """Register every adapter of a folder (a multi-adapter save: "default" at the root, the others in
    subfolders), one version each, named by `outputs.registry_names`. Every adapter is inspected
    and checked against its base before anything is stored, so a refused one stores none; then
    every adapter's files are stored, then every version is created in one write transaction, so a
    failure after the checks (the store, a file changed meanwhile) creates no version either."""
    path = Path(path)
    found = adapters_in(path) if path.is_dir() else {}
    plain = not found  # no adapter at the root or in a named subfolder: a Trainer output's checkpoints, or an error
    if plain:
        found = {DEFAULT_ADAPTER: pick(path, checkpoint=checkpoint).folder}
    targets = registry_names(name, list(found), names)
    for adapter, target in targets.items():
        try:
            check_name(target)
        except InvalidName as e:
            raise InvalidName(f"adapter {adapter!r} would be pushed as {target!r}, which is not a valid name",
                              name=target, hint="give it a valid name with --map ADAPTER=NAME") from e
    with tempfile.TemporaryDirectory(prefix="adapter-registry-push-") as tmp:
        checked = []
        for i, (adapter, target) in enumerate(targets.items()):
            m = _inspect(core, path, Path(tmp) / str(i), adapter=None if plain else adapter,
                         checkpoint=checkpoint if adapter == DEFAULT_ADAPTER else None)
            checked.append((adapter, target, m, *_check(core, m, name=target, base=base)))
        for _adapter, _target, m, *_checks in checked:  # every file stored before any version
            _store(core, m, progress=progress)
        items = []
        with core.db.write() as s:  # then every version, all or none
            for adapter, target, m, base_row, compat, note in checked:
                v = _create(s, core, m, name=target, base_row=base_row, compat=compat, tags=tags,
                            description=description, base_note=note)
                folder = found[adapter].relative_to(path).as_posix() if found[adapter] != path else "."
                items.append(T.PushedAdapter(adapter, folder, v))
    return T.MultiPush(tuple(items))


def _inspect(core: Core, path: Path, tmp: Path, *, checkpoint: str | None, adapter: str | None) -> AdapterManifest:
    p = pick(path, checkpoint=checkpoint, adapter=adapter)
    if core.settings.allow_pickle:
        from registry.adapters.convert import convert_folder

        converted = convert_folder(p.folder, tmp / "converted")
        if converted != p.folder:  # the copy has the weights; the training record stays with the original folder
            m = inspect_adapter(converted, allow_pickle=True, max_header_bytes=core.settings.max_header_bytes,
                                picked=dataclasses.replace(p, folder=converted, trainer_root=None))
            return dataclasses.replace(m, training=training_record(p))
    return inspect_adapter(path, allow_pickle=core.settings.allow_pickle,
                           max_header_bytes=core.settings.max_header_bytes, picked=p)


def _check(core: Core, manifest: AdapterManifest, *, name: str,
           base: str | None) -> tuple[M.BaseModelRow | None, dict[str, Any] | None, str | None]:
    """The base (given or guessed), the static check against it and why no base was guessed (or
    None); raises when the adapter does not fit."""
    note = None
    base_row: M.BaseModelRow | None
    with core.db.read() as s:
        if base:
            base_row = Q.get_base(s, base, namespace=Q.namespace_prefix(name))
        else:
            base_row, note = guess_base(s, manifest, namespace=Q.namespace_prefix(name))
        findings = against_base(manifest, base_row) if base_row is not None else []
        compat = compat_report(manifest, base_row) if base_row is not None and not findings else None
    raise_findings(findings)
    if base_row is not None and compat and compat["status"] == "fail":
        more = f" (and {len(compat['errors']) - 1} more)" if len(compat["errors"]) > 1 else ""
        raise Incompatible(f"{name}: does not fit base {base_row.name}: {compat['errors'][0]}{more}",
                           errors=compat["errors"])
    return base_row, compat, note


def _record(core: Core, manifest: AdapterManifest, *, name: str, base_row: M.BaseModelRow | None,
            compat: dict[str, Any] | None, tags: Mapping[str, str], description: str,
            progress: Progress | None, base_note: str | None = None) -> T.AdapterVersion:
    """Store the files, then record the version (the same files again: the existing version)."""
    _store(core, manifest, progress=progress)
    with core.db.write() as s:
        return _create(s, core, manifest, name=name, base_row=base_row, compat=compat, tags=tags,
                       description=description, base_note=base_note)


def _store(core: Core, manifest: AdapterManifest, *, progress: Progress | None) -> None:
    ingest(core, {e.local: (e.digest, e.size) for e in manifest.files}, progress=progress)


def _create(s: Session, core: Core, manifest: AdapterManifest, *, name: str, base_row: M.BaseModelRow | None,
            compat: dict[str, Any] | None, tags: Mapping[str, str], description: str,
            base_note: str | None = None) -> T.AdapterVersion:
    """The version of stored files, in the caller's write transaction."""
    base_row = s.get(M.BaseModelRow, base_row.id) if base_row is not None else None
    _adapter, row, created = C.create_version(s, manifest, name=name, base=base_row, tags=dict(tags),
                                              description=description, compat=compat, actor=core.actor)
    out = Q.hydrate(s, [row])[0]
    return dataclasses.replace(out, created=created, training=row.training, base_note=base_note)


def guess_base(s: Session, manifest: AdapterManifest, *,
               namespace: str | None = None) -> tuple[M.BaseModelRow | None, str | None]:
    """The registered base the config's base_model_name_or_path names, when it names exactly one
    (a registry name first; by Hub id or folder, the bases visible to `namespace` first), and,
    when it names several, why none was recorded."""
    hint = manifest.fields.base_model_hint
    if not hint:
        return None, None
    B = M.BaseModelRow
    named = s.scalar(select(B).where(B.name == hint).order_by(B.id.desc()).limit(1))
    if named is not None:
        return named, None
    match = Q.by_hub_id(hint)  # a Hub id, as training writes it
    if hint.startswith(("/", ".")):  # a local path: match the registered folder too
        match = match | (B.location == str(Path(hint).resolve()))
    cands = list(s.scalars(select(B).where(match).order_by(B.id.desc())))
    try:
        cands = Q.hub_preferred(s, cands, hub_id=hint, namespace=namespace)
    except Conflict as e:
        return None, (f"no base recorded: the config's base_model_name_or_path {hint!r} is recorded on "
                      f"{e.context['count']} registered bases; pass --base NAME")
    return (cands[0], None) if cands else (None, None)


def against_base(manifest: AdapterManifest, base: M.BaseModelRow) -> list[Finding]:
    """The validation findings only the base shows: target modules it lacks, a vocabulary it was not resized to."""
    return [*check_targets(manifest.conf, base.layout, tied=base.tie_word_embeddings, base=base.name),
            *check_vocab(manifest.header.tensors, base.layout, base=base.name, hint=manifest.fields.base_model_hint)]


def compat_report(manifest: AdapterManifest, base: M.BaseModelRow) -> dict[str, Any]:
    """The static compatibility of an inspected adapter with a base row (a JSON-able dict)."""
    rep = check_compat(manifest.fields, manifest.header.tensors, base.layout, base_config=base.config,
                       tied=base.tie_word_embeddings, zero_b=manifest.zero_b, adapter_vocab=tokenizer_vocab(manifest))
    rep["base"] = {"name": base.name, "revision": base.revision, "fingerprint": base.fingerprint}
    return rep


def check_folder(core: Core, path: Path, *, base: str | None = None) -> dict[str, Any]:
    """Validate a folder before any push (the passes push and add_base run) and, for an adapter
    folder with `base`, the checks only that registered base shows plus its static compatibility.

    Returns: {"path", "kind" (adapter|base), "status" (ok|refused), "findings": [...],
    "compat": {status, errors, warnings} | None}
    """
    from registry.adapters.validate.run import folder_report

    out = folder_report(path, max_header_bytes=core.settings.max_header_bytes)
    if out["kind"] == "adapter" and base is not None and not out["findings"]:
        manifest = inspect_adapter(path, allow_pickle=False, max_header_bytes=core.settings.max_header_bytes)
        with core.db.read() as s:
            base_row = Q.get_base(s, base)
            findings = [f.to_dict() for f in against_base(manifest, base_row)]
            if not findings:
                rep = compat_report(manifest, base_row)
                out["compat"] = {"base": rep["base"], "status": rep["status"], "errors": rep["errors"],
                                 "warnings": rep["warnings"]}
        out["findings"] = findings
        out["status"] = "refused" if findings or (out["compat"] or {}).get("status") == "fail" else "ok"
    return out


def set_base(core: Core, ref: str, base: str, *, force: bool = False) -> T.AdapterVersion:
    """Record the base model of a version pushed without one (content and digest unchanged).

    The checks push runs against a base run again (the findings only that base shows, and the static
    compatibility, which is stored); the change is audited as `version.set_base`. Replacing a base
    the version already has needs `force` (its verifications stay with the base they were run on).

    Raises:
        BaseModelNotFound: no such base
        ValidationFailed / Incompatible: the version does not fit the base (nothing changed)
        Conflict: the version already has another base and `force` is not given
    """
    r = parse_ref(ref)
    folder = adapter_folder(core, ref, warn=False)
    manifest = inspect_adapter(folder, allow_pickle=False, max_header_bytes=core.settings.max_header_bytes)
    with core.db.write() as s:
        _a, row = Q.get_version(s, r)
        vref = f"{r.name}@{row.version}"
        base_row = Q.get_base(s, base, namespace=Q.namespace_prefix(r.name))
        old = row.base_model
        if old is not None and old.id == base_row.id:
            # its own base again: nothing to check or audit, but the target-module rows are rewritten
            # with the current rule (the reindex path for rows an older registry wrote)
            C.set_target_modules(s, row, base_row)
            s.flush()
            return Q.hydrate(s, [row])[0]
        if old is not None and not force:
            raise Conflict(f"{vref} already has base {convert.base_label(old)}", ref=vref,
                           hint="pass --force to replace it (its verifications stay with that base)")
        raise_findings(against_base(manifest, base_row))
        rep = compat_report(manifest, base_row)
        if rep["status"] == "fail":
            raise Incompatible(f"{vref}: does not fit base {base_row.name}: {rep['errors'][0]}", errors=rep["errors"])
        row.base_model_id, row.compat, row.compat_status = base_row.id, rep, rep["status"]
        C.set_target_modules(s, row, base_row)  # "all-linear" / a regex: expanded against this base
        s.execute(update(M.MetricValue).where(M.MetricValue.version_id == row.id).values(base_model_id=base_row.id))
        C.record(s, core.actor, "version.set_base", vref,
                 {"from": convert.base_label(old) if old is not None else None, "to": convert.base_label(base_row),
                  "compat": rep["status"]})
        s.flush()
        s.refresh(row)
        return Q.hydrate(s, [row])[0]


def check(core: Core, ref: str, *, base: str | None) -> T.CompatReport:
    """Static compatibility of a version with its base (or another one); stored when it is its own base."""
    r = parse_ref(ref)
    folder = adapter_folder(core, ref, warn=False)
    manifest = inspect_adapter(folder, allow_pickle=False, max_header_bytes=core.settings.max_header_bytes)
    with core.db.write() as s:
        _a, row = Q.get_version(s, r)
        base_row = Q.get_base(s, base, namespace=Q.namespace_prefix(r.name)) if base else row.base_model
        if base_row is None:
            raise BaseModelNotFound(f"{ref} has no base model recorded; pass --base NAME")
        rep = compat_report(manifest, base_row)
        if row.base_model_id == base_row.id:
            row.compat, row.compat_status = rep, rep["status"]
        return T.CompatReport(f"{r.name}@{row.version}", convert.base_ref(base_row), rep["status"],
                              tuple(rep["errors"]), tuple(rep["warnings"]), rep["modules_touched"],
                              {k: v for k, v in rep.items() if k not in ("status", "errors", "warnings")})


def tokenizer_vocab(manifest: AdapterManifest) -> int | None:
    """The vocabulary size of the tokenizer.json shipped with the adapter (None when there is none)."""
    tok = next((e.local for e in manifest.files if e.path == "tokenizer.json"), None)
    if tok is None:
        return None
    try:
        doc = json.loads(Path(tok).read_text())
        vocab = len(doc.get("model", {}).get("vocab", {}))
        return vocab + len([t for t in doc.get("added_tokens", []) if t.get("id", 0) >= vocab])
    except (OSError, ValueError, AttributeError):
        return None
