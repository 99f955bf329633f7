"""Which adapter a pushed folder means: a PEFT folder, a Trainer/TRL output, a multi-adapter save.

Pure decisions over a folder's entries (lstat and small JSON reads, no torch):

- a Trainer/TRL output has `checkpoint-N/` folders; when its root holds no adapter (no
  `save_model()`), the checkpoint taken is `best_model_checkpoint` of the newest trainer_state.json
  when it names one that is there, else the highest step (`checkpoint="last"|"best"|"N"` picks);
- `save_pretrained` of a PeftModel with several adapters writes the "default" one at the root and
  every other one into a subfolder named after it: `adapters_in` lists them all, so nothing is
  dropped without a word, and `registry_names` maps them onto registry names.

A remote push uploads a subset of the folder (registry.adapters.inspect.push_files). Every
decision here reads only the chosen checkpoint and the newest trainer_state.json, both of which are
uploaded, so the server takes the same adapter from that subset as the client would locally.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from registry.adapters.validate.files import kind
from registry.errors import InvalidAdapter, InvalidInput

CONFIG = "adapter_config.json"
STATE = "trainer_state.json"
ARGS = "training_args.bin"
DEFAULT_ADAPTER = "default"  # peft's name for the adapter saved at the root
CHECKPOINT_RE = re.compile(r"checkpoint-(\d+)")
MAX_STATE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Pick:
    """The adapter folder a push reads, and why that one.

    `by`: "root" (the folder's own adapter), "best" (best_model_checkpoint), "last" (the highest step),
    "step" (asked for by number), "adapter" (a named adapter of a multi-adapter save).
    """

    folder: Path
    trainer_root: Path | None
    by: str
    checkpoint: str | None = None  # "checkpoint-20" when a checkpoint was taken
    adapter: str | None = None  # the peft adapter name, for a multi-adapter save
    note: str | None = None  # e.g. best_model_checkpoint names a folder that is gone


def _has_config(d: Path) -> bool:
    return kind(d / CONFIG) != "missing"  # a link named adapter_config.json counts: validation refuses it by name


def checkpoints(root: Path) -> dict[int, Path]:
    """The `checkpoint-N/` folders of a Trainer output that hold an adapter, by step."""
    out = {}
    for d in root.iterdir():
        m = CHECKPOINT_RE.fullmatch(d.name)
        if m and d.is_dir() and _has_config(d):
            out[int(m.group(1))] = d
    return out


def latest_state(root: Path) -> Path | None:
    """The newest trainer_state.json: the root's (`save_state()`), else that of the highest checkpoint having one."""
    return _latest(root, STATE)


def latest_args(root: Path) -> Path | None:
    """training_args.bin: the root's (`save_model()` writes it), else that of the highest checkpoint having one."""
    return _latest(root, ARGS)


def _latest(root: Path, name: str) -> Path | None:
    """root/NAME when it is a file, else NAME of the highest-step checkpoint folder holding it as a file."""
    if kind(root / name) == "file":
        return root / name
    steps = [(int(m.group(1)), d) for d in root.iterdir() if (m := CHECKPOINT_RE.fullmatch(d.name))
             and d.is_dir() and kind(d / name) == "file"]
    return max(steps)[1] / name if steps else None


def best_checkpoint(root: Path) -> str | None:
    """The folder name ("checkpoint-20") the newest trainer_state.json records as best_model_checkpoint.

    Trainer writes it as a path from where training ran ("out/checkpoint-20", absolute or not);
    only its last component can name a folder of this output.
    """
    state = latest_state(root)
    if state is None:
        return None
    try:
        if state.stat().st_size > MAX_STATE_BYTES:
            return None
        best = json.loads(state.read_bytes()).get("best_model_checkpoint")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, AttributeError):
        return None
    if not isinstance(best, str) or not best:
        return None
    name = best.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return name if CHECKPOINT_RE.fullmatch(name) else None


def is_trainer_output(root: Path) -> bool:
    return bool(checkpoints(root)) or latest_state(root) is not None or kind(root / ARGS) == "file"


def adapters_in(path: Path) -> dict[str, Path]:
    """The adapters of a folder by peft adapter name: "default" at the root, each other in its subfolder.

    `checkpoint-N/` folders are a Trainer's, not named adapters. A plain adapter folder gives
    {"default": path}; a Trainer output without a root adapter gives {}.
    """
    path = Path(path)
    out = {DEFAULT_ADAPTER: path} if _has_config(path) else {}
    for d in sorted(path.iterdir()):
        if not CHECKPOINT_RE.fullmatch(d.name) and kind(d) in ("dir", "link") and d.is_dir() and _has_config(d):
            out[d.name] = d
    return out


def parse_maps(entries: Iterable[str]) -> dict[str, str]:
    """{adapter: name} of ADAPTER=NAME entries (`push --map`, the push-all form's `map` fields).

    Raises:
        InvalidInput: an entry without "=" or with an empty side, or one adapter mapped twice
    """
    out: dict[str, str] = {}
    for entry in entries:
        adapter, eq, target = entry.partition("=")
        if not eq or not adapter or not target:
            raise InvalidInput(f"--map takes ADAPTER=NAME, not {entry!r}")
        if adapter in out:
            raise InvalidInput(f"--map names adapter {adapter!r} twice ({out[adapter]!r} and {target!r})",
                               hint="map each adapter once")
        out[adapter] = target
    return out


def registry_names(name: str, adapters: list[str], names: Mapping[str, str] | None = None) -> dict[str, str]:
    """{adapter: registry name}: `names` first, else "default" -> `name`, any other -> `name`-ADAPTER.

    Raises:
        InvalidInput: `names` maps an adapter the folder does not have, or two adapters get one name
    """
    names = dict(names or {})
    unknown = sorted(set(names) - set(adapters))
    if unknown:
        raise InvalidInput(f"--map names {', '.join(unknown)}, which the folder does not hold "
                           f"(it holds {', '.join(adapters)})")
    out = {a: names.get(a) or (name if a == DEFAULT_ADAPTER else f"{name}-{a.lower()}") for a in adapters}
    dup = sorted({n for n in out.values() if list(out.values()).count(n) > 1})
    if dup:
        raise InvalidInput(f"two adapters would be pushed as {dup[0]}", hint="give each its own name with --map")
    return out


def pick(path: Path, *, checkpoint: str | None = None, adapter: str | None = None) -> Pick:
    """The one adapter folder a push of `path` reads.

    Raises:
        InvalidAdapter: no adapter there; several adapters and none chosen; the chosen one is not there
        InvalidInput: `checkpoint` is not last, best or a step number, or `path` is not a Trainer output
    """
    path = Path(path)
    if not path.exists():
        raise InvalidAdapter(f"no such folder: {path}")
    if not path.is_dir():
        raise InvalidAdapter(f"not a folder: {path} (push takes the adapter's folder)")
    named = adapters_in(path)
    if adapter is not None:
        if adapter not in named:
            raise InvalidAdapter(f"{path} has no adapter {adapter!r}", hint=_holds(named))
        if adapter != DEFAULT_ADAPTER:
            if checkpoint is not None:
                raise InvalidInput("--checkpoint applies to a Trainer output's root adapter, not to a named adapter")
            return Pick(named[adapter], None, "adapter", adapter=adapter)
    elif len(named) > 1:
        raise InvalidAdapter(f"{path} holds {len(named)} adapters ({', '.join(named)}): push them all "
                             "(adapter-registry push without --adapter, Registry.push_all) or pick one",
                             hint="pass --adapter NAME (adapter= in Python)")
    elif len(named) == 1 and DEFAULT_ADAPTER not in named:
        (only, folder), = named.items()
        if checkpoint is None:
            return Pick(folder, None, "adapter", adapter=only)
    return _trainer_pick(path, checkpoint, adapter)


def _trainer_pick(path: Path, checkpoint: str | None, adapter: str | None) -> Pick:
    root_adapter = _has_config(path)
    trainer_root = path if is_trainer_output(path) else None
    if checkpoint is None and root_adapter:
        return Pick(path, trainer_root, "root", adapter=adapter)
    cks = checkpoints(path)
    if not cks:
        if checkpoint is not None:
            raise InvalidInput(f"{path} has no checkpoint-N folders holding an adapter: --checkpoint applies to a "
                               "Trainer output")
        raise InvalidAdapter(f"missing {CONFIG} in {path} (not a PEFT adapter folder, a Trainer output or a "
                             "multi-adapter save)", hint="push the folder save_pretrained or Trainer wrote")
    by_name = {d.name: d for d in cks.values()}
    best = best_checkpoint(path)
    last = cks[max(cks)]
    have = ", ".join(d.name for _s, d in sorted(cks.items()))
    if checkpoint is None:
        if best in by_name:
            return Pick(by_name[best], path, "best", checkpoint=best)
        note = (f"best_model_checkpoint {best} is not in the folder; took the last checkpoint" if best else None)
        return Pick(last, path, "last", checkpoint=last.name, note=note)
    if checkpoint == "last":
        return Pick(last, path, "last", checkpoint=last.name)
    if checkpoint == "best":
        if best is None:
            raise InvalidAdapter(f"{path}: no trainer_state.json records a best_model_checkpoint",
                                 hint=f"pass --checkpoint last or a step ({have})")
        if best not in by_name:
            raise InvalidAdapter(f"{path}: best_model_checkpoint {best} is not in the folder", hint=f"it has {have}")
        return Pick(by_name[best], path, "best", checkpoint=best)
    if not checkpoint.isdigit():
        raise InvalidInput(f"--checkpoint takes last, best or a step number, not {checkpoint!r}")
    if int(checkpoint) not in cks:
        raise InvalidAdapter(f"{path} has no checkpoint-{int(checkpoint)} holding an adapter", hint=f"it has {have}")
    d = cks[int(checkpoint)]
    return Pick(d, path, "step", checkpoint=d.name)


def _holds(named: dict[str, Path]) -> str:
    return f"it holds {', '.join(named)}" if named else "it holds no named adapters"
