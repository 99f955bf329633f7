"""Ways to break a real adapter or base folder, shared by the class tests and the fuzz suite."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

W = "adapter_model.safetensors"
C = "adapter_config.json"


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header: dict[str, Any] | str | bytes, body: bytes) -> bytes:
    hb = header if isinstance(header, bytes) else (header if isinstance(header, str) else json.dumps(header)).encode()
    return struct.pack("<Q", len(hb)) + hb + body


def edit_header(path: Path, fn) -> None:
    h, body = split(path.read_bytes())
    out = fn(h, body)
    path.write_bytes(out if isinstance(out, bytes) else join(h, body))


def edit_config(folder: Path, fn) -> None:
    p = folder / C
    conf = json.loads(p.read_text())
    out = fn(conf)
    p.write_text(out if isinstance(out, str) else json.dumps(conf))


def tensors(h: dict[str, Any]) -> list[str]:
    return sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])


# -- adapter mutations: name -> (function(folder), code it must be refused with) ----------------------
def _meta_not_str(f: Path) -> None:
    edit_header(f / W, lambda h, b: h.setdefault("__metadata__", {}).update({"format": 1}))


def _trailing(f: Path) -> None:
    with open(f / W, "ab") as fh:
        fh.write(b"\0" * 16)


def _duplicate(f: Path) -> None:
    def fn(h, body):
        first = tensors(h)[0]
        text = json.dumps(h)
        dup = json.dumps({first: h[first]})[1:-1]
        return join(text[:-1] + ", " + dup + "}", body)
    edit_header(f / W, fn)


def _many_entries(f: Path) -> None:
    def fn(h, body):
        for i in range(100_001):
            h[f"pad.{i}"] = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
    edit_header(f / W, fn)


def _gap(f: Path) -> None:
    def fn(h, body):
        last = tensors(h)[-1]
        lo, hi = h[last]["data_offsets"]
        h[last]["data_offsets"] = [lo + 4, hi + 4]
        return join(h, body + b"\0" * 4)
    edit_header(f / W, fn)


def _overlap(f: Path) -> None:
    def fn(h, body):
        a, b = tensors(h)[:2]
        h[b]["data_offsets"] = [h[a]["data_offsets"][0], h[a]["data_offsets"][0] + h[b]["data_offsets"][1]
                                - h[b]["data_offsets"][0]]
    edit_header(f / W, fn)


def _shape_overflow(f: Path) -> None:
    def fn(h, body):
        t = tensors(h)[0]
        h[t]["shape"] = [2**40, 2**40]
        h[t]["dtype"] = "F4"
    edit_header(f / W, fn)


def _int_dtype(f: Path) -> None:
    def fn(h, body):
        t = next(k for k in tensors(h) if h[k]["dtype"] == "F32")
        h[t]["dtype"] = "I32"
    edit_header(f / W, fn)


def _bool_dtype(f: Path) -> None:
    def fn(h, body):
        t = next(k for k in tensors(h) if h[k]["dtype"] == "F32")
        n = h[t]["data_offsets"][1] - h[t]["data_offsets"][0]
        h[t]["dtype"] = "BOOL"
        h[t]["shape"] = [n]
    edit_header(f / W, fn)


def _drop_magnitudes(f: Path) -> None:
    from safetensors.numpy import load_file, save_file

    sd = load_file(f / W)
    save_file({k: v for k, v in sd.items() if "magnitude" not in k}, f / W, metadata={"format": "pt"})


def _cfg(**kv):
    def fn(f: Path) -> None:
        edit_config(f, lambda c: c.update(kv))
    return fn


def _cfg_del(key):
    def fn(f: Path) -> None:
        edit_config(f, lambda c: c.pop(key))
    return fn


def _cfg_text(transform):
    def fn(f: Path) -> None:
        p = f / C
        p.write_text(transform(p.read_text()))
    return fn


def _link_weights_outside(f: Path) -> None:
    real = f.parent / f"{f.name}-outside.safetensors"
    os.replace(f / W, real)
    os.symlink(real, f / W)


def _link_config_outside(f: Path) -> None:
    real = f.parent / f"{f.name}-outside.json"
    os.replace(f / C, real)
    os.symlink(real, f / C)


def _fifo_weights(f: Path) -> None:
    (f / W).unlink()
    os.mkfifo(f / W)


def _fifo_config(f: Path) -> None:
    (f / C).unlink()
    os.mkfifo(f / C)


def _loop(f: Path) -> None:
    (f / "README.md").unlink(missing_ok=True)
    (f / "README.md").symlink_to("README.md")  # a link to itself: resolving it loops


ADAPTER_CASES = {
    "metadata_not_string": (_meta_not_str, "ST_METADATA_TYPE"),
    "trailing_bytes": (_trailing, "ST_TRAILING_BYTES"),
    "duplicate_tensor_name": (_duplicate, "ST_DUPLICATE_KEY"),
    "absurd_entry_count": (_many_entries, "ST_TOO_MANY_ENTRIES"),
    "offsets_gap": (_gap, "ST_OFFSETS_GAP"),
    "offsets_overlap": (_overlap, "ST_OFFSETS_OVERLAP"),
    "f4_shape_overflow": (_shape_overflow, "ST_SHAPE_OVERFLOW"),
    "integer_lora_tensor": (_int_dtype, "WEIGHTS_NOT_FLOAT"),
    "boolean_lora_tensor": (_bool_dtype, "WEIGHTS_NOT_FLOAT"),
    "unknown_peft_type": (_cfg(peft_type="LORAX"), "CONFIG_PEFT_TYPE_UNKNOWN"),
    "r_string": (_cfg(r="4"), "CONFIG_RANK_TYPE"),
    "r_boolean": (_cfg(r=True), "CONFIG_RANK_TYPE"),
    "alpha_missing": (_cfg_del("lora_alpha"), "CONFIG_ALPHA_MISSING"),
    "alpha_negative": (_cfg(lora_alpha=-8), "CONFIG_ALPHA_RANGE"),
    "alpha_nan": (_cfg_text(lambda t: t.replace('"lora_alpha": 8', '"lora_alpha": NaN')), "CONFIG_NONSTANDARD_JSON"),
    "alpha_infinity": (_cfg_text(lambda t: t.replace('"lora_alpha": 8', '"lora_alpha": Infinity')),
                       "CONFIG_NONSTANDARD_JSON"),
    "target_modules_wrong_type": (_cfg(target_modules={"q_proj": 1}), "CONFIG_TARGET_MODULES_TYPE"),
    # found by tests/fuzz: peft's LoRA layer calls .lower() on it (AttributeError at load time)
    "init_lora_weights_integer": (_cfg(init_lora_weights=0), "CONFIG_FIELD_TYPE"),
    "init_lora_weights_unknown": (_cfg(init_lora_weights="xavier"), "CONFIG_FIELD_TYPE"),
    "target_modules_not_in_base": (_cfg(target_modules=["q_proj", "v_proj", "qkv_proj"]), "CONFIG_TARGET_NOT_IN_BASE"),
    "base_path_dotdot": (_cfg(base_model_name_or_path="../../etc/models/llama"), "CONFIG_BASE_PATH"),
    "nesting_too_deep": (_cfg_text(lambda t: t[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"),
                         "CONFIG_TOO_DEEP"),
    "duplicate_config_key": (_cfg_text(lambda t: t[:-1] + ', "r": 64}'), "CONFIG_DUPLICATE_KEY"),
    "symlinked_weights_outside": (_link_weights_outside, "FOLDER_SYMLINK"),
    "symlinked_config_outside": (_link_config_outside, "FOLDER_SYMLINK"),
    "fifo_weights": (_fifo_weights, "FOLDER_SPECIAL_FILE"),
    "fifo_config": (_fifo_config, "FOLDER_SPECIAL_FILE"),
    "symlink_loop": (_loop, "FOLDER_SYMLINK"),
}
DORA_CASES = {"dora_without_magnitudes": (_drop_magnitudes, "WEIGHTS_DORA_MAGNITUDE_MISSING")}


# -- base mutations (a sharded base: model.safetensors.index.json and its shards) ---------------------
IDX = "model.safetensors.index.json"


def _index(f: Path, fn) -> None:
    doc = json.loads((f / IDX).read_text())
    fn(doc)
    (f / IDX).write_text(json.dumps(doc))


def _no_index(f: Path) -> None:
    (f / IDX).unlink()


def _weight_map_list(f: Path) -> None:
    _index(f, lambda d: d.update(weight_map=list(d["weight_map"].items())))


def _weight_map_dotdot(f: Path) -> None:
    _index(f, lambda d: d["weight_map"].update({next(iter(d["weight_map"])): "../model-00001.safetensors"}))


def _weight_map_absolute(f: Path) -> None:
    _index(f, lambda d: d["weight_map"].update({next(iter(d["weight_map"])): "/etc/passwd"}))


def _wrong_shard(f: Path) -> None:
    def fn(d):
        wm = d["weight_map"]
        shards = sorted(set(wm.values()))
        k = next(k for k, v in wm.items() if v == shards[0])
        wm[k] = shards[1]
    _index(f, fn)


def _drop_tensor(f: Path, name: str = "model.norm.weight") -> None:
    from safetensors.numpy import load_file, save_file

    doc = json.loads((f / IDX).read_text())
    shard = doc["weight_map"].pop(name)
    sd = load_file(f / shard)
    save_file({k: v for k, v in sd.items() if k != name}, f / shard, metadata={"format": "pt"})
    (f / IDX).write_text(json.dumps(doc))


def _config_hidden(f: Path) -> None:
    c = json.loads((f / "config.json").read_text())
    c["vocab_size"] = c["vocab_size"] * 2
    (f / "config.json").write_text(json.dumps(c))


def _tokenizer_broken(f: Path) -> None:
    p = f / "tokenizer.json"
    p.write_text(p.read_text()[: len(p.read_text()) // 2])


def _tokenizer_wrong_model(f: Path) -> None:
    p = f / "tokenizer.json"
    doc = json.loads(p.read_text())
    doc["model"]["type"] = "NoSuchModel"
    p.write_text(json.dumps(doc))


def _base_link_outside(f: Path) -> None:
    real = f.parent / f"{f.name}-config.json"
    os.replace(f / "config.json", real)
    os.symlink(real, f / "config.json")


def _base_fifo(f: Path) -> None:
    os.mkfifo(f / "tokenizer.json.fifo")


BASE_CASES = {
    "shards_without_index": (_no_index, "BASE_SHARDS_NO_INDEX"),
    "weight_map_not_object": (_weight_map_list, "BASE_INDEX_WEIGHT_MAP_TYPE"),
    "weight_map_dotdot": (_weight_map_dotdot, "BASE_INDEX_PATH"),
    "weight_map_absolute": (_weight_map_absolute, "BASE_INDEX_PATH"),
    "weight_map_wrong_shard": (_wrong_shard, "BASE_INDEX_WRONG_SHARD"),
    "needed_tensor_missing": (_drop_tensor, "BASE_TENSOR_MISSING"),
    "shape_contradicts_config": (_config_hidden, "BASE_SHAPE_CONFIG"),
    "tokenizer_json_truncated": (_tokenizer_broken, "BASE_TOKENIZER_JSON"),
    "tokenizer_json_unknown_model": (_tokenizer_wrong_model, "BASE_TOKENIZER_JSON"),
    "link_outside_the_folder": (_base_link_outside, "BASE_LINK_OUTSIDE"),
    "fifo_in_the_folder": (_base_fifo, "BASE_SPECIAL_FILE"),
}


def hf_snapshot(src: Path, cache: Path, repo: str = "models--org--tiny", rev: str = "0" * 40) -> Path:
    """Lay `src` out as a Hugging Face cache repo: blobs by digest, the snapshot's files links into ../../blobs."""
    import hashlib
    import shutil

    blobs = cache / repo / "blobs"
    snap = cache / repo / "snapshots" / rev
    blobs.mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.iterdir()):
        if p.is_file():
            d = hashlib.sha256(p.read_bytes()).hexdigest()
            shutil.copyfile(p, blobs / d)
            (snap / p.name).symlink_to(Path("..", "..", "blobs", d))
    (cache / repo / "refs").mkdir(exist_ok=True)
    (cache / repo / "refs" / "main").write_text(rev)
    return snap
