"""Training metadata from Trainer / TRL output folders, read without executing anything.

`training_args.bin` is a pickle of TrainingArguments. Unpickling it could run arbitrary code, so
`read_pickle_state` walks the pickle opcodes with a tiny stack machine that only builds plain
values (str, numbers, lists, dicts) and records class references by name without importing them.

Every step is bounded, because the files come from whoever pushes: the file is read up to
MAX_FILE_BYTES, the zip entry's declared size and the bytes actually inflated are both capped at
MAX_PICKLE_BYTES (a zip bomb stops after that much), the opcode count at MAX_OPS, and turning the
values into JSON (`_plain`) stops at MAX_DEPTH levels and MAX_NODES values, so memo tricks (a
list that contains itself, references shared 2**40 times) cannot recurse or blow up. Anything past
a bound means "no metadata", never a failed push.
"""

from __future__ import annotations

import json
import pickletools
from pathlib import Path
from typing import Any

KEEP_ARGS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay",
    "optim", "seed", "bf16", "fp16", "max_grad_norm", "gradient_checkpointing", "max_seq_length",
    "max_length", "packing", "dataset_text_field", "logging_steps", "save_steps", "report_to",
)
MAX_FILE_BYTES = 16 * 1024 * 1024  # training_args.bin on disk (a TrainingArguments one is ~8 KB)
MAX_PICKLE_BYTES = 4 * 1024 * 1024  # the pickle, inflated from the zip
MAX_OPS = 500_000
MAX_DEPTH = 32
MAX_NODES = 20_000  # values kept per argument
MAX_STATE_BYTES = 64 * 1024 * 1024  # trainer_state.json


class _Obj(dict):
    """A stand-in for an object the pickle would have constructed."""


def read_pickle_state(path: Path) -> dict[str, Any] | None:
    """The attribute dict of the top object of a pickle, or None if it cannot be read safely."""
    data = _pickle_bytes(_head(Path(path), MAX_FILE_BYTES))
    if data is None:
        return None
    try:
        top = _Machine().run(data)
    except Exception:  # any malformed or unexpected pickle: no metadata rather than a failed push
        return None
    return dict(top) if isinstance(top, dict) else None


def _head(path: Path, limit: int) -> bytes | None:
    """The whole file if it is at most `limit` bytes, else (or when unreadable) None; never reads more."""
    import os

    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                return None
            data = f.read(size + 1)  # read(n) allocates n bytes up front; one more shows growth since
    except OSError:
        return None
    return data if len(data) <= limit else None


def _pickle_bytes(data: bytes | None) -> bytes | None:
    """The pickle itself: `torch.save` writes a zip whose data.pkl holds it; None if that is unreadable or too big."""
    if data is None:
        return None
    if data[:2] != b"PK":
        return data if len(data) <= MAX_PICKLE_BYTES else None
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            info = next(i for i in z.infolist() if i.filename.endswith("data.pkl"))
            if info.file_size > MAX_PICKLE_BYTES:  # the declared size
                return None
            with z.open(info) as f:  # and what really inflates: a lying header stops here
                out = f.read(MAX_PICKLE_BYTES + 1)
            return out if len(out) <= MAX_PICKLE_BYTES else None
    except Exception:
        return None


class _Machine:
    """The pickle stack machine, reduced to what builds plain values.

    Containers are built as lists, dicts and tuples; an object becomes an `_Obj` dict naming its
    class; class references stay ("global", "module.Name") tuples and are never imported.
    """

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def run(self, data: bytes) -> Any:
        """Execute the opcodes up to STOP; returns the top of the stack (None if empty)."""
        for n, (op, arg, _pos) in enumerate(pickletools.genops(data)):
            if n > MAX_OPS:
                raise ValueError(f"more than {MAX_OPS} pickle opcodes")
            name = op.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                break
            _OPS.get(name, _push_arg)(self, name, arg)
        return self.stack[-1] if self.stack else None

    def pop_mark(self) -> list[Any]:
        """Everything above the last MARK, removed from the stack."""
        mark = self.marks.pop()
        items = self.stack[mark:]
        del self.stack[mark:]
        return items


def _push_arg(m: _Machine, name: str, arg: Any) -> None:
    """Every plain value opcode (strings, ints, floats, bytes) pushes its argument."""
    m.stack.append(arg)


def _stack_op(m: _Machine, name: str, arg: Any) -> None:
    if name == "MARK":
        m.marks.append(len(m.stack))
    elif name == "POP":
        m.stack.pop()
    elif name == "POP_MARK":
        m.pop_mark()
    elif name == "DUP":
        m.stack.append(m.stack[-1])


def _constant(m: _Machine, name: str, arg: Any) -> None:
    """None, booleans, and persistent ids / extension codes (unknowable here: None)."""
    if name == "BINPERSID":
        m.stack.pop()
    m.stack.append(name == "NEWTRUE" if name in ("NEWTRUE", "NEWFALSE") else None)


def _memo(m: _Machine, name: str, arg: Any) -> None:
    if name in ("PUT", "BINPUT", "LONG_BINPUT"):
        m.memo[arg] = m.stack[-1]
    elif name == "MEMOIZE":
        m.memo[len(m.memo)] = m.stack[-1]
    else:  # GET, BINGET, LONG_BINGET
        m.stack.append(m.memo.get(arg))


def _global(m: _Machine, name: str, arg: Any) -> None:
    """A class or function reference, kept by name: ("global", "module.Name")."""
    if name == "STACK_GLOBAL":
        attr, mod = m.stack.pop(), m.stack.pop()
        arg = f"{mod}.{attr}"
    m.stack.append(("global", str(arg).replace(" ", ".")))


def _container(m: _Machine, name: str, arg: Any) -> None:
    """Empty and built dicts, lists, tuples; sets become lists."""
    if name == "DICT":
        items = m.pop_mark()
        m.stack.append(dict(zip(items[::2], items[1::2])))
    elif name == "LIST":
        m.stack.append(list(m.pop_mark()))
    elif name == "TUPLE":
        m.stack.append(tuple(m.pop_mark()))
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        n = int(name[-1])
        row = tuple(m.stack[-n:])
        del m.stack[-n:]
        m.stack.append(row)
    else:  # EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE, EMPTY_SET, FROZENSET
        m.stack.append({"EMPTY_DICT": {}, "EMPTY_TUPLE": ()}.get(name, []))


def _fill(m: _Machine, name: str, arg: Any) -> None:
    """SETITEM(S) into the dict below, APPEND(S) / ADDITEMS onto the list below (else dropped)."""
    if name == "SETITEM":
        v, k = m.stack.pop(), m.stack.pop()
        if isinstance(m.stack[-1], dict):
            m.stack[-1][_key(k)] = v
    elif name == "SETITEMS":
        items = m.pop_mark()
        if isinstance(m.stack[-1], dict):
            for k, v in zip(items[::2], items[1::2]):
                m.stack[-1][_key(k)] = v
    else:
        items = [m.stack.pop()] if name == "APPEND" else m.pop_mark()
        if isinstance(m.stack[-1], list):
            m.stack[-1].extend(items)


def _construct(m: _Machine, name: str, arg: Any) -> None:
    """An object, never built: an `_Obj` naming its class (and an enum's value, as in SchedulerType("linear"))."""
    if name == "NEWOBJ_EX":
        m.stack.pop()
    if name in ("OBJ", "INST"):
        items = m.pop_mark()
        cls, args = (items[0] if items else None), None
    else:
        args = m.stack.pop()
        cls = m.stack.pop()
    obj = _Obj(__class__=cls[1] if isinstance(cls, tuple) and cls[:1] == ("global",) else "?")
    if name == "REDUCE" and isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], (str, int, float)):
        obj["value"] = args[0]
    m.stack.append(obj)


def _build(m: _Machine, name: str, arg: Any) -> None:
    """BUILD: the state dict becomes the object's attributes (a (dict, slots) pair gives its dict)."""
    state = m.stack.pop()
    if isinstance(state, tuple) and state and isinstance(state[0], dict):
        state = state[0]
    if isinstance(m.stack[-1], dict) and isinstance(state, dict):
        m.stack[-1].update(state)


_OPS = {name: fn for fn, names in (
    (_stack_op, ("MARK", "POP", "POP_MARK", "DUP")),
    (_constant, ("NONE", "NEWTRUE", "NEWFALSE", "PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4")),
    (_memo, ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET")),
    (_global, ("GLOBAL", "STACK_GLOBAL")),
    (_container, ("EMPTY_DICT", "DICT", "EMPTY_LIST", "LIST", "EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "TUPLE",
                  "EMPTY_SET", "FROZENSET")),
    (_fill, ("SETITEM", "SETITEMS", "APPEND", "APPENDS", "ADDITEMS")),
    (_construct, ("REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST")),
    (_build, ("BUILD",)),
) for name in names}


def _key(k: Any) -> Any:
    """A dict key as JSON can hold it; a container key is named by its type (its str() could be unbounded)."""
    return k if isinstance(k, (str, int, float, bool, type(None))) else f"<{type(k).__name__}>"


def _plain(v: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """A JSON-able copy of a value, at most MAX_DEPTH deep and MAX_NODES values big (None past either)."""
    budget = [MAX_NODES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        return None
    if isinstance(v, _Obj):
        v = v.get("value", v.get("__class__"))
        return v if isinstance(v, (str, int, float, bool, type(None))) else None
    if isinstance(v, (list, tuple)):
        out = []
        for x in v:
            if budget[0] < 0:
                break
            out.append(_plain(x, depth + 1, budget))
        return out
    if isinstance(v, float) and v != v or v in (float("inf"), float("-inf")):
        return str(v)
    if isinstance(v, (str, int, float, bool, type(None))):
        return v
    return f"<{type(v).__name__}>"


def training_metadata(folder: Path, *, root: Path | None = None) -> dict[str, Any] | None:
    """Log history, summary and arguments from trainer_state.json / training_args.bin, if present.

    Read from the adapter folder first, then the Trainer root, then the root's newest checkpoint that
    has them (TRL's default flow, `train()` + `save_model()`, leaves trainer_state.json only in
    checkpoint-N/). `source` and `args_source` name the files taken, relative to the root.
    """
    from registry.adapters.outputs import latest_args, latest_state

    candidates = [folder] + ([root] if root and root != folder else [])
    if root is not None:
        candidates += [p.parent for p in (latest_state(root), latest_args(root)) if p is not None]
    out: dict[str, Any] = {}
    for d in dict.fromkeys(candidates):
        ts = d / "trainer_state.json"
        if ts.is_file() and "log_history" not in out:
            state = _trainer_state(ts)
            if state is None:
                continue
            hist = state.get("log_history")
            hist = [h for h in hist if isinstance(h, dict)] if isinstance(hist, list) else []
            out["log_history"] = hist[-5000:]
            out["loss_curve"] = [[h["step"], h["loss"]] for h in hist if "loss" in h and "step" in h
                                 and _number(h["step"]) and _number(h["loss"])]
            for k in ("global_step", "epoch", "max_steps", "num_train_epochs", "train_batch_size",
                      "best_metric", "best_model_checkpoint"):
                if k in state:
                    out[k] = state[k]
            out["source"] = _rel(ts, root)
        ta = d / "training_args.bin"
        if ta.is_file() and "args" not in out:
            st = read_pickle_state(ta)
            if st:
                out["args"] = {k: _plain(st[k]) for k in KEEP_ARGS if k in st}
                cls = st.get("__class__")
                out["args_class"] = cls if isinstance(cls, str) else None
                out["args_source"] = _rel(ta, root)
    if root is not None and folder != root:
        out["selected_checkpoint"] = folder.name
    return out or None


def _rel(path: Path, root: Path | None) -> str:
    """A record's path as the push names it: relative to the Trainer root, else its file name."""
    try:
        return path.relative_to(root).as_posix() if root is not None else path.name
    except ValueError:
        return path.name


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _trainer_state(path: Path) -> dict[str, Any] | None:
    """trainer_state.json as a dict, or None: unreadable, not JSON, not an object, nested past the
    parser's recursion limit, or bigger than MAX_STATE_BYTES."""
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            return None
        state = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return state if isinstance(state, dict) else None
