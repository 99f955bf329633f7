"""Seeded mutations of real peft-saved adapters and real tiny bases, in memory (bytes and dicts)."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

DTYPES = ["F32", "F16", "BF16", "F64", "I32", "I64", "BOOL", "U8", "F4", "F6_E2M3", "C64", "F8_E4M3", "X32", "", 7]
VALUES: list[Any] = [None, True, False, 0, -1, 1, 2**63, 1e308, -3.5, "", "x", "4", [], [1], {}, {"a": 1}, "NaN"]


def flip(data: bytes, lo: int, hi: int, rng: random.Random) -> bytes:
    if hi <= lo:
        return data
    i = rng.randrange(lo, hi)
    b = bytearray(data)
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def split(data: bytes) -> tuple[int, dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8:8 + n]), data[8 + n:]


def join(header: Any, body: bytes, *, pad: int = 0) -> bytes:
    hb = (header if isinstance(header, str) else json.dumps(header)).encode() + b" " * pad
    return struct.pack("<Q", len(hb)) + hb + body


def _entries(h: dict[str, Any]) -> list[str]:
    return [k for k in h if k != "__metadata__"]


def header_edit(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    n, h, body = split(data)
    names = _entries(h)
    t = rng.choice(names)
    e = h[t]
    op = rng.randrange(14)
    if op == 0:
        e["dtype"] = rng.choice(DTYPES)
    elif op == 1:
        e["shape"] = [*e["shape"], rng.choice([1, 2, 0])]
    elif op == 2:
        e["shape"] = [rng.choice([2**31, 2**62, 2**64, -1, 0, "3", 1.5]) for _ in e["shape"]]
    elif op == 3:
        lo, hi = e["data_offsets"]
        d = rng.choice([-8, -4, -1, 1, 4, 8, 10**12])
        e["data_offsets"] = [lo + d, hi + d] if rng.random() < 0.5 else [lo, hi + d]
    elif op == 4:
        e["data_offsets"] = list(reversed(e["data_offsets"]))
    elif op == 5:
        e.pop(rng.choice(["dtype", "shape", "data_offsets"]))
    elif op == 6:
        e[rng.choice(["extra", "offsets", "dtype2"])] = rng.choice(VALUES)
    elif op == 7:
        h["__metadata__"] = {"format": rng.choice([1, None, ["pt"], {"a": "b"}, True])}
    elif op == 8:
        text = json.dumps(h)
        return "header_duplicate", join(text[:-1] + ", " + json.dumps({t: e})[1:-1] + "}", body)
    elif op == 9:
        h.pop(t)  # its bytes stay: a gap or trailing bytes
    elif op == 10:
        h[t] = rng.choice(VALUES)
    elif op == 11:
        return "header_length", struct.pack("<Q", n + rng.choice([-9, -1, 1, 7, 2**40])) + data[8:]
    elif op == 12:
        return "header_not_object", join(rng.choice(["[]", "1", '"x"', "null", " {}", "{\"a\": NaN}"]), body)
    else:
        return "header_padding", join(h, body, pad=rng.choice([1, 3, 8]))
    return f"header_edit_{op}", join(h, body)


def weights_mutation(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    r = rng.random()
    if r < 0.08:
        return "flip_length", flip(data, 0, 8, rng)
    if r < 0.22:
        return "flip_header", flip(data, 8, 8 + n, rng)
    if r < 0.40:
        return "flip_data", flip(data, 8 + n, len(data), rng)
    if r < 0.50:
        return "truncate", data[:rng.randrange(0, len(data))]
    if r < 0.56:
        return "append", data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    return header_edit(data, rng)


def config_mutation(conf: dict[str, Any], rng: random.Random) -> tuple[str, bytes]:
    c = json.loads(json.dumps(conf))
    r = rng.random()
    keys = sorted(c)
    if r < 0.2:
        k = rng.choice(keys)
        c.pop(k)
        return f"config_remove_{k}", json.dumps(c).encode()
    if r < 0.55:
        k = rng.choice(["r", "lora_alpha", "peft_type", "target_modules", "use_dora", "use_rslora", "bias",
                        "modules_to_save", "layers_to_transform", "rank_pattern", "alpha_pattern",
                        "base_model_name_or_path", "fan_in_fan_out", "task_type", "trainable_token_indices",
                        "layers_pattern", "exclude_modules", "init_lora_weights", rng.choice(keys)])
        v = rng.choice(VALUES)
        c[k] = v
        text = json.dumps(c)
        if v == "NaN":
            text = text.replace('"NaN"', rng.choice(["NaN", "Infinity", "-Infinity"]))
        return f"config_type_{k}", text.encode()
    if r < 0.7:
        a, b = rng.sample(keys, 2)
        c[a], c[b] = c[b], c[a]
        return "config_swap", json.dumps(c).encode()
    if r < 0.78:
        c["peft_type"] = rng.choice(["lora", "LoRA ", "IA3", "LOHA", "PROMPT", "lora\n", "ADALORA"])
        return "config_peft_type", json.dumps(c).encode()
    if r < 0.84:
        depth = rng.choice([50, 5000, 200_000])
        return "config_deep", (json.dumps(c)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}").encode()
    if r < 0.9:
        k = rng.choice(keys)
        return "config_duplicate", (json.dumps(c)[:-1] + f', "{k}": {json.dumps(c[k])}' + "}").encode()
    text = json.dumps(c).encode()
    return "config_truncate", text[:rng.randrange(len(text))]
