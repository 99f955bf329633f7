"""Inspect an adapter folder (PEFT, or a Trainer/TRL output) into a manifest, without torch."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.adapters import keys as K
from registry.adapters.outputs import DEFAULT_ADAPTER, Pick, adapters_in, latest_args, latest_state, pick
from registry.adapters.peft_config import MAX_CONFIG_BYTES, PeftFields, parse_config
from registry.adapters.safetensors import SCANNED_DTYPES, Header, read_header, scan_tensor
from registry.adapters.training import training_metadata
from registry.adapters.validate import Finding, raise_findings
from registry.adapters.validate import config as VC
from registry.adapters.validate.files import kind, read_regular
from registry.adapters.validate.folder import check_entries, check_weights
from registry.dtypes import TORCH_NAMES
from registry.errors import CorruptFile, UnsafeFormat
from registry.storage.digest import sha256_file

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9._-]+)?")  # used with fullmatch: "$" would admit a trailing newline
# The files that travel with a model besides its weights and config; the merge engine copies
# exactly these byte for byte (re-serialising a tokenizer through transformers changes it).
TOKENIZER_ONLY_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.json", "merges.txt", "vocab.txt",
)
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json")
TOKENIZER_FILES = {*TOKENIZER_ONLY_FILES, *CHAT_TEMPLATE_FILES, *PROCESSOR_FILES}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
TRAINING_STATE = {"optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin", "scaler.pt"}
OTHER_FILES = {"README.md"}
TRAINER_RECORDS = ("trainer_state.json", "training_args.bin")
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def check_name(name: str) -> str:
    from registry.errors import InvalidName

    if not isinstance(name, str) or len(name) > 200 or not NAME_RE.fullmatch(name):
        raise InvalidName(f"invalid adapter name {name!r}", name=name)
    return name


@dataclass(frozen=True)
class FileEntry:
    path: str
    local: Path
    size: int
    role: str
    digest: str


@dataclass
class AdapterManifest:
    folder: Path
    conf: dict[str, Any]
    fields: PeftFields
    header: Header
    files: list[FileEntry]
    content_digest: str
    adapter_dtype: str | None
    param_count: int
    size_bytes: int
    zero_b: list[str]
    training: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
    picked: Pick | None = None  # which adapter of the pushed folder this is, and why

    @property
    def layout(self) -> K.AdapterLayout:
        return K.layout(self.header.tensors)


def content_digest(files: list[tuple[str, str]]) -> str:
    """One digest for a set of (path, sha256): a version's identity."""
    h = hashlib.sha256()
    for path, digest in sorted(files):
        h.update(f"{path}\0{digest}\n".encode())
    return h.hexdigest()


def find_adapter_folder(path: Path, *, checkpoint: str | None = None,
                        adapter: str | None = None) -> tuple[Path, Path | None]:
    """(adapter folder, trainer root or None): the one `registry.adapters.outputs.pick` takes.

    Decided from lstat alone: a link or FIFO named adapter_config.json still makes the folder an
    adapter folder, so that the validation refuses it by name instead of calling it missing.
    """
    p = pick(Path(path), checkpoint=checkpoint, adapter=adapter)
    return p.folder, p.trainer_root


def check_folder_files(folder: Path, trainer_root: Path | None, *, root: Path | None = None) -> list[Finding]:
    """Links and special files where a push would read: the adapter folder, the Trainer root's records."""
    found = []
    top = trainer_root or root
    if top is not None and folder != top and kind(folder) == "link":
        found.append(Finding("FOLDER_SYMLINK", f"{folder.name}: the {'checkpoint' if trainer_root else 'adapter'} "
                             "folder is a symlink", file=folder.name))
    if trainer_root is not None and folder != trainer_root:
        found += check_entries(trainer_root, [n for n in TRAINER_RECORDS if kind(trainer_root / n) != "missing"])
    return found + check_entries(folder)


def _role(name: str) -> str | None:
    """The role of a file of the adapter folder in a version, or None when it is not part of it."""
    if name == CONFIG:
        return "config"
    if name == WEIGHTS:
        return "weights"
    if name in TOKENIZER_FILES:
        return "tokenizer"
    if name == "trainer_state.json":
        return "training"
    if name in OTHER_FILES:
        return "other"
    return None  # optimizer state, pickles, logs: not part of the adapter


def push_files(path: Path, *, checkpoint: str | None = None, adapter: str | None = None,
               every_adapter: bool = False) -> list[tuple[str, Path]]:
    """Every file a push of `path` reads, as (path relative to `path`, local file).

    That is the adapter folder's version files, its pickle weights (converted when pickles are
    allowed, refused otherwise: either way the reader must see them), and the training record
    (trainer_state.json, training_args.bin) of the adapter folder, of the Trainer root and of the
    newest checkpoint that has one. A remote push uploads exactly these, so the server's push reads
    what a local one would. `every_adapter`: the files of each adapter of a multi-adapter save.
    """
    root = Path(path)
    found = adapters_in(root) if every_adapter and root.is_dir() else {}
    if found:  # none: a Trainer output's checkpoints (or an error), chosen as a single push chooses
        out: dict[str, Path] = {}
        for name in found:
            out.update(push_files(root, checkpoint=checkpoint if name == DEFAULT_ADAPTER else None, adapter=name))
        return sorted(out.items())
    p = pick(root, checkpoint=checkpoint, adapter=adapter)
    folder, trainer_root = p.folder, p.trainer_root
    raise_findings(check_folder_files(folder, trainer_root, root=root))  # a link would upload what it points at
    files: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and (_role(f.name) or (f.suffix in PICKLE_SUFFIXES and f.name not in TRAINING_STATE)):
            files[f.relative_to(root).as_posix()] = f
    records = [d / n for d in {d for d in (folder, trainer_root) if d is not None} for n in TRAINER_RECORDS]
    if trainer_root is not None:
        records += [r for r in (latest_state(trainer_root), latest_args(trainer_root)) if r is not None]
    for r in records:
        if r.is_file() and not r.is_symlink():
            files[r.relative_to(root).as_posix()] = r
    return sorted(files.items())


def inspect_adapter(path: Path, *, allow_pickle: bool = False, max_header_bytes: int = 100 * 1024 * 1024,
                    scan: bool = True, checkpoint: str | None = None, adapter: str | None = None,
                    picked: Pick | None = None) -> AdapterManifest:
    """Validate, read and digest an adapter folder.

    Every finding of the folder (files, config, weights header, weights) is reported at once.

    Raises:
        AdapterValidationFailed: with every finding (nothing opened when the folder has links or FIFOs)
        UnsafeFormat: pickle weights only
        InvalidAdapter: no adapter folder at all, or what peft_config refuses

    `checkpoint` and `adapter` choose within a Trainer output or a multi-adapter save (see
    registry.adapters.outputs.pick); `picked` is a choice already made (of another folder: the
    converted copy of a pickle adapter).
    """
    chosen = picked or pick(Path(path), checkpoint=checkpoint, adapter=adapter)
    folder, trainer_root = chosen.folder, chosen.trainer_root
    raise_findings(check_folder_files(folder, trainer_root, root=Path(path)))
    findings: list[Finding] = []
    conf: dict[str, Any] | None = None
    try:
        raw = read_regular(folder / CONFIG, limit=MAX_CONFIG_BYTES)
        conf, found = VC.parse(raw) if len(raw) <= MAX_CONFIG_BYTES else (None, [Finding(
            "CONFIG_JSON", f"{CONFIG}: more than {MAX_CONFIG_BYTES} bytes, the most the registry reads",
            file=CONFIG)])
    except OSError as e:
        found = [Finding("CONFIG_MISSING", f"{CONFIG}: cannot be read ({e.strerror or e})", file=CONFIG)]
    findings += found
    if conf is not None:
        findings += VC.check_config(conf)
    weights = folder / WEIGHTS
    notes: list[str] = []
    pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.name not in TRAINING_STATE]
    header: Header | None = None
    zero_b: list[str] = []
    if kind(weights) == "missing":
        if pickles and not allow_pickle:
            raise UnsafeFormat(f"{folder.name}: pickle weights ({', '.join(sorted(pickles))}) are refused: "
                               "they can run code when loaded", files=sorted(pickles))
        if pickles:
            raise UnsafeFormat(f"{folder.name}: only pickle weights found; even with pickles allowed the registry "
                               "stores safetensors only", files=sorted(pickles))
        findings.append(Finding("WEIGHTS_MISSING", f"missing {WEIGHTS} in {folder}", file=WEIGHTS))
    else:
        if pickles:
            notes.append(f"ignored pickle files: {', '.join(sorted(pickles))}")
        try:
            header = read_header(weights, max_header_bytes=max_header_bytes)
        except CorruptFile as e:
            findings += [Finding(f["code"], f["message"], file=WEIGHTS, field=f.get("field"))
                         for f in getattr(e, "findings", None) or []] or [
                Finding("FOLDER_SPECIAL_FILE", e.message, file=WEIGHTS)]
    if header is not None:
        findings += check_weights(conf or {}, header.tensors, file=WEIGHTS)
        if scan and not findings:
            zero_b = _scan(weights, header, findings)
    raise_findings(findings)
    assert conf is not None and header is not None  # no findings: both were read
    fields = parse_config(conf)
    dtypes = Counter(i.dtype for i in header.tensors.values() if i.dtype in SCANNED_DTYPES)
    adapter_dtype = TORCH_NAMES.get(dtypes.most_common(1)[0][0]) if dtypes else None
    entries: list[FileEntry] = []
    for p in sorted(folder.iterdir()):
        role = _role(p.name) if kind(p) == "file" else None
        if role is not None:
            entries.append(FileEntry(p.name, p, p.stat().st_size, role, sha256_file(p)))
    digest = content_digest([(e.path, e.digest) for e in entries])
    return AdapterManifest(
        folder=folder, conf=conf, fields=fields, header=header, files=entries, content_digest=digest,
        adapter_dtype=adapter_dtype, param_count=sum(i.numel for i in header.tensors.values()),
        size_bytes=sum(e.size for e in entries), zero_b=zero_b,
        training=training_record(chosen), notes=notes, picked=chosen,
    )


def training_record(p: Pick) -> dict[str, Any] | None:
    """The training record of a Trainer output's chosen adapter, with which checkpoint was taken and why
    (None outside a Trainer output)."""
    if p.trainer_root is None:
        return None
    out = training_metadata(p.folder, root=p.trainer_root)
    if out is not None and p.checkpoint:
        out["selected_by"] = p.by
        if p.note:
            out["selection_note"] = p.note
    return out


def _scan(weights: Path, header: Header, findings: list[Finding]) -> list[str]:
    """NaN/Inf values become findings; the all-zero lora_B tensors are returned (a warning, later)."""
    zero_b = []
    for name, info in header.tensors.items():
        if info.dtype not in SCANNED_DTYPES:
            continue
        bad, all_zero = scan_tensor(weights, info)
        if bad:
            findings.append(Finding("WEIGHTS_NONFINITE", f"{WEIGHTS}: tensor {name} has {bad} NaN/Inf values",
                                    file=WEIGHTS, field=name))
        if all_zero and (name.endswith(".lora_B.weight") or name.endswith(".lora_embedding_B")):
            zero_b.append(name)
    return zero_b


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
