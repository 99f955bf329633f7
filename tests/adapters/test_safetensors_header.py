import json
import struct

import numpy as np
import pytest

from registry.adapters.safetensors import read_header, scan_tensor
from registry.errors import CorruptFile


def write_st(path, tensors: dict, *, header_extra=None, truncate=0, raw_header=None):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        dtype = {np.float32: "F32", np.float16: "F16", np.uint16: "BF16"}[arr.dtype.type]
        b = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header.update(header_extra or {})
    hb = raw_header if raw_header is not None else json.dumps(header).encode()
    data = struct.pack("<Q", len(hb)) + hb + b"".join(blobs)
    path.write_bytes(data[: len(data) - truncate] if truncate else data)
    return path


def test_valid_file_lists_tensors_with_shapes_and_dtypes(tmp_path):
    p = write_st(tmp_path / "a.safetensors", {"x": np.ones((2, 3), np.float32), "y": np.zeros(4, np.float16)})
    h = read_header(p)
    assert h.tensors["x"].shape == (2, 3) and h.tensors["x"].dtype == "F32"
    assert h.tensors["y"].numel == 4


def test_truncated_file_is_corrupt_with_the_tensor_named(tmp_path):
    p = write_st(tmp_path / "a.safetensors", {"x": np.ones((64,), np.float32)}, truncate=10)
    with pytest.raises(CorruptFile, match="truncated.*'x'"):
        read_header(p)


def test_header_larger_than_the_limit_is_refused_before_reading_it(tmp_path):
    p = tmp_path / "big.safetensors"
    p.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(CorruptFile, match="exceeds the limit"):
        read_header(p, max_header_bytes=1024)


def test_header_that_is_not_json_is_corrupt(tmp_path):
    p = write_st(tmp_path / "a.safetensors", {}, raw_header=b"\xff\xfe not json")
    with pytest.raises(CorruptFile, match="not valid JSON"):
        read_header(p)


def test_tiny_file_is_not_safetensors(tmp_path):
    p = tmp_path / "a.safetensors"
    p.write_bytes(b"abc")
    with pytest.raises(CorruptFile, match="not a safetensors file"):
        read_header(p)


def test_offsets_that_disagree_with_the_shape_are_corrupt(tmp_path):
    extra = {"bad": {"dtype": "F32", "shape": [10], "data_offsets": [0, 8]}}
    p = write_st(tmp_path / "a.safetensors", {}, header_extra=extra)
    with pytest.raises(CorruptFile, match="spans 8 bytes"):
        read_header(p)


def test_overlapping_tensors_are_corrupt(tmp_path):
    extra = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    hb = json.dumps(extra).encode()
    p = tmp_path / "o.safetensors"
    p.write_bytes(struct.pack("<Q", len(hb)) + hb + b"\0" * 12)
    with pytest.raises(CorruptFile, match="overlap"):
        read_header(p)


@pytest.mark.parametrize("dtype,bad_bits", [("F16", 0x7C00), ("BF16", 0x7FC0)])
def test_scan_counts_inf_and_nan_in_half_precision(tmp_path, dtype, bad_bits):
    arr = np.zeros(100, np.uint16 if dtype == "BF16" else np.float16)
    arr.view(np.uint16)[[3, 50]] = bad_bits
    p = write_st(tmp_path / "h.safetensors", {"w": arr})
    bad, zero = scan_tensor(p, read_header(p).tensors["w"])
    assert bad == 2 and zero is False


def test_scan_reports_all_zero_tensors(tmp_path):
    p = write_st(tmp_path / "z.safetensors", {"w": np.zeros((4, 4), np.float32)})
    assert scan_tensor(p, read_header(p).tensors["w"]) == (0, True)
