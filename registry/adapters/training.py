"""Training metadata from Trainer / TRL output folders, read without executing anything.

`training_args.bin` is a pickle of TrainingArguments. Unpickling it could run arbitrary code, so
`read_pickle_state` walks the pickle opcodes with a tiny stack machine that only builds plain
values (str, numbers, lists, dicts) and records class references by name without importing them.
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
MAX_PICKLE_BYTES = 10 * 1024 * 1024


class _Obj(dict):
    """A stand-in for an object the pickle would have constructed."""


def read_pickle_state(path: Path) -> dict[str, Any] | None:
    """The attribute dict of the top object of a pickle, or None if it cannot be read safely."""
    data = Path(path).read_bytes()[:MAX_PICKLE_BYTES]
    if data[:2] == b"PK":  # torch.save zip container: the pickle is data.pkl inside
        import io
        import zipfile

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                name = next(n for n in z.namelist() if n.endswith("data.pkl"))
                data = z.read(name)
        except Exception:
            return None
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    try:
        for op, arg, _pos in pickletools.genops(data):
            name = op.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                break
            if name == "MARK":
                marks.append(len(stack))
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "STACK_GLOBAL":
                    attr, mod = stack.pop(), stack.pop()
                    arg = f"{mod}.{attr}"
                stack.append(("global", str(arg).replace(" ", ".")))
            elif name in ("EMPTY_DICT", "DICT"):
                if name == "DICT":
                    items = stack[marks[-1]:]
                    del stack[marks.pop():]
                    stack.append(dict(zip(items[::2], items[1::2])))
                else:
                    stack.append({})
            elif name in ("EMPTY_LIST", "LIST"):
                if name == "LIST":
                    items = stack[marks[-1]:]
                    del stack[marks.pop():]
                    stack.append(list(items))
                else:
                    stack.append([])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif name == "TUPLE":
                items = tuple(stack[marks[-1]:])
                del stack[marks.pop():]
                stack.append(items)
            elif name in ("EMPTY_SET", "FROZENSET"):
                stack.append([])
            elif name == "SETITEM":
                v, k = stack.pop(), stack.pop()
                if isinstance(stack[-1], dict):
                    stack[-1][_key(k)] = v
            elif name == "SETITEMS":
                items = stack[marks[-1]:]
                del stack[marks.pop():]
                if isinstance(stack[-1], dict):
                    for k, v in zip(items[::2], items[1::2]):
                        stack[-1][_key(k)] = v
            elif name in ("APPEND", "APPENDS", "ADDITEMS"):
                if name == "APPEND":
                    items = [stack.pop()]
                else:
                    items = stack[marks[-1]:]
                    del stack[marks.pop():]
                if isinstance(stack[-1], list):
                    stack[-1].extend(items)
            elif name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST"):
                if name == "NEWOBJ_EX":
                    stack.pop()
                if name in ("OBJ", "INST"):
                    items = stack[marks[-1]:]
                    del stack[marks.pop():]
                    cls = items[0] if items else None
                else:
                    args = stack.pop()
                    cls = stack.pop()
                obj = _Obj(__class__=cls[1] if isinstance(cls, tuple) and cls[:1] == ("global",) else "?")
                if name == "REDUCE" and isinstance(args, tuple) and len(args) == 1 and \
                        isinstance(args[0], (str, int, float)):
                    obj["value"] = args[0]  # enums: SchedulerType("linear")
                stack.append(obj)
            elif name == "BUILD":
                state = stack.pop()
                if isinstance(state, tuple) and state and isinstance(state[0], dict):
                    state = state[0]
                if isinstance(stack[-1], dict) and isinstance(state, dict):
                    stack[-1].update(state)
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(arg))
            elif name == "POP":
                stack.pop()
            elif name == "POP_MARK":
                del stack[marks.pop():]
            elif name == "DUP":
                stack.append(stack[-1])
            elif name in ("NONE",):
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            elif name in ("PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4"):
                if name == "BINPERSID":
                    stack.pop()
                stack.append(None)
            elif op.stack_after and arg is not None or name in ("BININT", "BININT1", "BININT2", "LONG1"):
                stack.append(arg)  # every plain value opcode: strings, ints, floats, bytes
            else:
                stack.append(arg)
    except Exception:
        return None
    top = stack[-1] if stack else None
    return dict(top) if isinstance(top, dict) else None


def _key(k: Any) -> Any:
    return k if isinstance(k, (str, int, float, bool, type(None))) else str(k)


def _plain(v: Any) -> Any:
    if isinstance(v, _Obj):
        return v.get("value", v.get("__class__"))
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (str, int, float, bool, type(None))):
        return v
    return str(v)


def training_metadata(folder: Path, *, root: Path | None = None) -> dict[str, Any] | None:
    """Log history, summary and arguments from trainer_state.json / training_args.bin, if present."""
    candidates = [folder] + ([root] if root and root != folder else [])
    out: dict[str, Any] = {}
    for d in candidates:
        ts = d / "trainer_state.json"
        if ts.is_file() and "log_history" not in out:
            try:
                state = json.loads(ts.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            hist = [h for h in state.get("log_history", []) if isinstance(h, dict)]
            out["log_history"] = hist[-5000:]
            out["loss_curve"] = [[h["step"], h["loss"]] for h in hist if "loss" in h and "step" in h]
            for k in ("global_step", "epoch", "max_steps", "num_train_epochs", "train_batch_size",
                      "best_metric", "best_model_checkpoint"):
                if k in state:
                    out[k] = state[k]
        ta = d / "training_args.bin"
        if ta.is_file() and "args" not in out:
            st = read_pickle_state(ta)
            if st:
                out["args"] = {k: _plain(st[k]) for k in KEEP_ARGS if k in st}
                out["args_class"] = st.get("__class__")
    if root is not None and folder != root:
        out["selected_checkpoint"] = folder.name
    return out or None
