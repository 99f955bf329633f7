"""Reading training metadata does bounded work: zip bombs, memo tricks, deep nesting, huge files.

Each crafted file gives "no metadata" (or the part that could be read) quickly, with bounded
memory, and never an exception: a push must not fail with a 500 because of a log file.
"""

from __future__ import annotations

import json
import pickle
import struct
import time
import tracemalloc
import zipfile

import pytest

from registry.adapters.training import read_pickle_state, training_metadata

BOMB_BYTES = 300 * 1024 * 1024


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A torch-style zip whose data.pkl inflates to 300 MiB (deflated: ~300 KB)."""
    path = tmp_path_factory.mktemp("bomb") / "training_args.bin"
    chunk = b"\0" * (1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("archive/data.pkl", "w") as f:
            for _ in range(BOMB_BYTES // len(chunk)):
                f.write(chunk)
    return path


def _peak(fn):
    tracemalloc.start()
    t = time.perf_counter()
    try:
        out = fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out, peak, time.perf_counter() - t


def test_a_zip_bomb_training_args_is_ignored_quickly_with_bounded_memory(bomb):
    assert bomb.stat().st_size < 2 * 1024 * 1024
    state, peak, took = _peak(lambda: read_pickle_state(bomb))
    assert state is None
    assert peak < 16 * 1024 * 1024 and took < 2, (peak, took)


def test_a_zip_entry_that_lies_about_its_size_is_cut_off_while_reading(bomb, tmp_path):
    data = bytearray(bomb.read_bytes())
    for sig, size_at in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # central directory, local header
        at = data.rfind(sig) if sig == b"PK\x01\x02" else data.find(sig)
        struct.pack_into("<I", data, at + size_at, 1000)  # "1000 bytes uncompressed"
    p = tmp_path / "training_args.bin"
    p.write_bytes(bytes(data))
    state, peak, _took = _peak(lambda: read_pickle_state(p))
    assert state is None and peak < 16 * 1024 * 1024


def test_a_huge_training_args_file_is_not_read_into_memory(tmp_path):
    p = tmp_path / "training_args.bin"
    with open(p, "wb") as f:
        f.write(pickle.dumps({"learning_rate": 1.0}))
        f.truncate(2 * 1024**3)  # sparse: 2 GiB on paper
    state, peak, took = _peak(lambda: read_pickle_state(p))
    assert state is None and peak < 16 * 1024 * 1024 and took < 2


def _folder_with(tmp_path, data: bytes):
    (tmp_path / "training_args.bin").write_bytes(data)
    return tmp_path


def test_a_self_referencing_list_gives_metadata_without_recursing(tmp_path):
    loop: list = []
    loop.append(loop)
    d = {"learning_rate": loop, "seed": 3, "optim": {"a": loop}}
    d["report_to"] = d
    meta = training_metadata(_folder_with(tmp_path, pickle.dumps(d)))
    assert meta is not None and meta["args"]["seed"] == 3
    json.dumps(meta)  # storable as the catalog stores it


def test_shared_references_do_not_blow_up_exponentially(tmp_path):
    node: list = [1]
    for _ in range(40):  # 2**40 leaves when expanded; ~40 memo entries in the pickle
        node = [node, node]
    t = time.perf_counter()
    meta = training_metadata(_folder_with(tmp_path, pickle.dumps({"learning_rate": node, "seed": 1}, protocol=2)))
    assert time.perf_counter() - t < 1
    assert meta is not None and meta["args"]["seed"] == 1
    assert len(json.dumps(meta)) < 1_000_000


def test_deeply_nested_lists_and_keys_made_of_containers_are_bounded(tmp_path):
    depth = 200_000
    # PROTO 2, EMPTY_DICT, key 'learning_rate', then `depth` nested lists, SETITEM, STOP
    data = b"\x80\x02}" + b"X\x0d\x00\x00\x00learning_rate" + b"]" * depth + b"a" * (depth - 1) + b"s."
    meta = training_metadata(_folder_with(tmp_path, data))
    json.dumps(meta)
    # {key: 1, "seed": 2} where key = (1,) doubled 40 times with DUP + TUPLE2: its str() is 2**40 long
    data = b"\x80\x02}" + b"K\x01\x85" + b"2\x86" * 40 + b"K\x01s" + b"X\x04\x00\x00\x00seedK\x02s."
    t = time.perf_counter()
    state = read_pickle_state(_folder_with(tmp_path, data) / "training_args.bin")
    assert state == {"<tuple>": 1, "seed": 2}
    assert time.perf_counter() - t < 1


def test_a_pickle_with_millions_of_opcodes_is_abandoned(tmp_path):
    data = b"\x80\x02}X\x04\x00\x00\x00seed](" + b"K\x01" * 3_000_000 + b"es."  # {"seed": [1] * 3e6}: 6 MB
    t = time.perf_counter()
    state = read_pickle_state(_folder_with(tmp_path, data) / "training_args.bin")
    assert state is None and time.perf_counter() - t < 2


@pytest.mark.parametrize("text", ["[" * 100_000, '{"log_history": 5}', "[1, 2]", '{"log_history": [1, "x"]}',
                                  '{"log_history": [{"step": [[1]], "loss": {}}]}'])
def test_a_crafted_trainer_state_never_raises(tmp_path, text):
    (tmp_path / "trainer_state.json").write_text(text)
    meta = training_metadata(tmp_path)
    json.dumps(meta)


def test_a_huge_trainer_state_is_skipped(tmp_path):
    p = tmp_path / "trainer_state.json"
    with open(p, "wb") as f:
        f.write(b'{"global_step": 3, "log_history": []' + b" " * 10)
        f.truncate(1024**3)
    _meta, peak, took = _peak(lambda: training_metadata(tmp_path))
    assert peak < 16 * 1024 * 1024 and took < 2
