"""The streaming engine: base shards in, merged shards out, one tensor in memory at a time.

Tensors nobody touches are copied file to file by the kernel (`copy_file_range`); a tensor with
LoRA work is read with `pread` (no mmap, so the base never counts towards our RSS), merged with
math.py's peft-identical arithmetic, probed (validate.py) and written. Peak memory is the largest
merged tensor in fp32 a few times over, plus the adapter, whatever the size of the model.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path

from registry.adapters.safetensors import TensorInfo
from registry.dtypes import FROM_SAFETENSORS, ITEMSIZE, TORCH_NAMES
from registry.errors import MergeError, translate_os_error
from registry.merge import math as lm
from registry.merge import validate
from registry.merge.plan import Plan
from registry.merge.st import OutTensor, ShardWriter, plan_shards, shard_name

ShardDone = Callable[[Path, str, int], None]  # (the complete shard, its sha256, its size)

# float8 values are not streamed: how peft's load casts them has not been checked bit for bit
_NOT_STREAMED = {"F8_E4M3", "F8_E5M2"}


def torch_dtype(st_dtype: str):
    import torch

    if st_dtype in TORCH_NAMES and st_dtype not in _NOT_STREAMED:
        return getattr(torch, TORCH_NAMES[st_dtype])
    from registry.errors import Unsupported

    raise Unsupported(f"tensor dtype {st_dtype} is not streamed")


class _Files:
    """Open file descriptors by path, closed together."""

    def __init__(self):
        self.fds: dict[Path, int] = {}

    def fd(self, path: Path) -> int:
        if path not in self.fds:
            self.fds[path] = os.open(path, os.O_RDONLY)
        return self.fds[path]

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def read_tensor(files: _Files, info: TensorInfo):
    """The tensor's bytes read with pread into fresh memory (a plain, writable CPU tensor)."""
    import torch

    buf = torch.empty(info.nbytes, dtype=torch.uint8)
    view = buf.numpy().data  # a memoryview of the tensor's own memory
    fd, off, got = files.fd(info.file), info.offset, 0
    while got < info.nbytes:
        n = os.preadv(fd, [view[got:]], off + got)
        if n == 0:
            from registry.errors import CorruptFile

            raise CorruptFile(f"{info.file.name} ended inside tensor {info.name}", path=str(info.file))
        got += n
    if info.nbytes == 0:
        return torch.empty(info.shape, dtype=torch_dtype(info.dtype))
    return buf.view(torch_dtype(info.dtype)).view(info.shape)


def _write_tensor(sw: ShardWriter, name: str, t) -> None:
    """Run by the writer thread: the tensor's bytes are taken there, off the merging thread."""
    sw.write(name, tensor_bytes(t))


def tensor_bytes(t):
    import torch

    t = t.detach().to("cpu").contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    return memoryview(t.view(torch.uint8).numpy())


class _Writer(threading.Thread):
    """Writes finished tensors in the background so that disk I/O overlaps the next merge.

    At most `depth` tensors wait in the queue, which bounds the memory this adds.
    """

    def __init__(self, depth: int = 2):
        super().__init__(daemon=True)
        import queue

        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.cancelled = False

    def run(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            fn, release = item
            try:
                if self.error is None and not self.cancelled:
                    fn()
            except BaseException as e:  # re-raised in the main thread by put()/finish()
                self.error = e
            finally:
                # Always hand buffers back, also after a failed or skipped write: the main thread
                # may be waiting for one (a full disk once deadlocked the merge here).
                if release is not None:
                    release()

    def put(self, fn: Callable[[], None], release: Callable[[], None] | None = None) -> None:
        if self.error is not None:
            if release is not None:
                release()
            raise self.error
        self.q.put((fn, release))

    def cancel(self) -> None:
        """Drop what is queued and wait for the thread, so no write races the cleanup."""
        self.cancelled = True
        if self.is_alive():
            self.q.put(None)
            self.join()

    def finish(self) -> None:
        self.q.put(None)
        self.join()
        if self.error is not None:
            raise self.error


def stream_merge(
    plan: Plan,
    base: dict[str, TensorInfo],
    adapter: dict[str, TensorInfo],
    out_dir: Path,
    *,
    device: str = "cpu",
    max_shard_size: int,
    progress: Callable[[int, int, str], None] | None = None,
    on_shard: ShardDone | None = None,
    mirror_dir: Path | None = None,
) -> tuple[dict[str, str], dict[str, str], dict]:
    """Write the merged weights of `plan` into `out_dir` as shards.

    With `mirror_dir` (an existing folder), each shard is also written there, byte for byte, by the
    same writes: a second copy made while merging, hashed once (the user's `--out`).

    `on_shard(path, sha256, size)` is called from the writer thread as each shard is complete,
    while the next one is merged (an S3 store uploads it meanwhile); an error it raises fails the merge.

    Returns:
        (weight_map: tensor -> shard file, shard file -> sha256, probe figures from validate).
    """
    import torch

    merger = _Merger(plan, base, adapter, device)
    shards = plan_shards([OutTensor(t.name, t.dtype, t.shape) for t in plan.tensors], max_shard_size)
    weight_map: dict[str, str] = {}
    total = len(plan.tensors)
    done = 0
    writer = _Writer()
    writer.start()
    # The writer thread hashes and writes on one core while torch computes on the other. Two torch
    # threads plus the writer oversubscribe a 2-core box and OpenMP's spin-waits then make every
    # kernel ~10x slower, so torch gets the cores minus one here; ops whose result could depend on
    # the thread count (reductions: DoRA norms) run with the caller's setting (_Merger._queue_ops).
    torch.set_num_threads(max(1, min(merger.caller_threads, (os.cpu_count() or 2) - 1)))
    open_writers: list[ShardWriter] = []
    try:
        for i, shard in enumerate(shards):
            name = shard_name(i, len(shards))
            sw = ShardWriter(out_dir / name, shard, mirror=mirror_dir / name if mirror_dir is not None else None)
            open_writers.append(sw)
            for t in shard:
                weight_map[t.name] = name
                merger.queue(sw, merger.by_name[t.name], writer)
                done += 1
                if progress:
                    progress(done, total, t.name)
            writer.put(functools.partial(_close_shard, sw, on_shard))
        writer.finish()
    except OSError as e:
        writer.cancel()
        raise translate_os_error(e, path=str(out_dir)) from e
    except BaseException:
        writer.cancel()
        raise
    finally:
        torch.set_num_threads(merger.caller_threads)
        for sw in open_writers:
            sw.abort()
        merger.files.close()
    digests = {sw.path.name: sw.sha256.hexdigest() for sw in open_writers}
    return weight_map, digests, validate.summarize_probes(merger.probes)


def _close_shard(sw: ShardWriter, on_shard: ShardDone | None) -> None:
    sw.close()
    if on_shard is not None:
        on_shard(sw.path, sw.sha256.hexdigest(), sw.size)


class _Merger:
    """What one `stream_merge` works with: the open inputs, the adapter's tensors, reused buffers, probes.

    `queue` decides per tensor how its bytes are made, then hands the write to the writer thread.
    """

    def __init__(self, plan: Plan, base: dict[str, TensorInfo], adapter: dict[str, TensorInfo], device: str):
        import torch

        self.base, self.adapter, self.device = base, adapter, device
        self.files = _Files()
        self.by_name = {t.name: t for t in plan.tensors}
        self.scratch = _Scratch([t for t in plan.tensors if _fast(t, base, device)])
        self.probes: list[dict] = []
        self.caller_threads = torch.get_num_threads()
        self._adapter_cache: dict[str, torch.Tensor] = {}

    def adapter_tensor(self, key: str):
        """An adapter tensor on the device, read once (a module's A and B serve one op, the cache all)."""
        if key not in self._adapter_cache:
            self._adapter_cache[key] = read_tensor(self.files, self.adapter[key]).to(self.device)
        return self._adapter_cache[key]

    def queue(self, sw: ShardWriter, tp, writer: _Writer) -> None:
        """Queue tensor `tp` for shard `sw`: copied as is, merged on the hot path, or through every op."""
        src = self.base.get(tp.source) if tp.source else None
        if not tp.ops and src is not None and src.dtype == tp.dtype and src.shape == tp.shape:
            fd = self.files.fd(src.file)
            writer.put(functools.partial(sw.copy_from, tp.name, fd, src.offset))
        elif src is not None and _fast(tp, self.base, self.device):
            self._queue_fast(sw, tp, src, writer)
        else:
            self._queue_ops(sw, tp, src, writer)

    def _queue_fast(self, sw: ShardWriter, tp, src: TensorInfo, writer: _Writer) -> None:
        """Vanilla LoRA in place in a reused read buffer, which the writer hands back once written."""
        buf = self.scratch.take()
        w = _read_into(self.files, src, buf)
        op = tp.ops[0]
        a, b = self.adapter_tensor(op.a), self.adapter_tensor(op.b)
        probe = validate.Probe(op, w, a, b, None)
        finite = lm.merge_linear_into(w, a, b, op.scaling, op.fan_in_fan_out, self.scratch.delta, self.scratch.wide)
        self.probes.append(probe.check(w))
        if not finite:
            raise _nonfinite(tp)
        writer.put(functools.partial(_write_tensor, sw, tp.name, w), release=functools.partial(self.scratch.give, buf))

    def _queue_ops(self, sw: ShardWriter, tp, src: TensorInfo | None, writer: _Writer) -> None:
        """Every other tensor: the plan's ops in peft's order, with the caller's torch thread count."""
        import torch

        fast_threads = torch.get_num_threads()
        torch.set_num_threads(self.caller_threads)
        try:
            value = _merged_value(tp, src, self.files, self.adapter_tensor, self.device, self.probes)
        finally:
            torch.set_num_threads(fast_threads)
        writer.put(functools.partial(_write_tensor, sw, tp.name, value))


def _merged_value(tp, src, files, adapter_tensor, device, probes):
    """Apply the plan's ops to one stored tensor, in peft's order; returns the tensor to write."""
    dtype = torch_dtype(tp.dtype)
    if src is not None:
        w = read_tensor(files, src).to(device)
        if w.dtype != dtype:
            w = w.to(dtype)
    else:
        w = None
    for op in tp.ops:
        if op.kind == "replace":
            w = lm.replace(adapter_tensor(op.src), dtype)
        elif op.kind == "tokens":
            w = lm.merge_tokens(w, adapter_tensor(op.src), op.indices)
        elif op.kind == "lora_bias":
            w = lm.merge_lora_bias(w, adapter_tensor(op.src), op.scaling)
        elif op.kind in ("lora", "lora_embedding"):
            a, b = adapter_tensor(op.a), adapter_tensor(op.b)
            mag = adapter_tensor(op.magnitude) if op.magnitude else None
            probe = validate.Probe(op, w, a, b, mag)
            if op.kind == "lora":
                w = lm.merge_linear(w, a, b, op.scaling, op.fan_in_fan_out, mag)
            else:
                w = lm.merge_embedding(w, a, b, op.scaling, mag)
            probes.append(probe.check(w))
        else:  # pragma: no cover - plan.py only emits the kinds above
            raise MergeError(f"unknown op {op.kind}")
    if w is None or tuple(w.shape) != tuple(tp.shape):
        raise MergeError(f"{tp.name}: planned shape {list(tp.shape)}, got {None if w is None else list(w.shape)}")
    _check_finite(tp, w)
    return w


def _check_finite(tp, w) -> None:
    if tp.ops and w.is_floating_point() and lm.has_nonfinite(w):
        raise _nonfinite(tp)


def _nonfinite(tp) -> MergeError:
    return MergeError(f"non-finite values in merged {tp.name}: the adapter seems broken", tensor=tp.name)


def _fast(tp, base, device) -> bool:
    """Vanilla LoRA on a Linear/Conv1D stored in the output dtype: the hot path, through buffers."""
    src = base.get(tp.source) if tp.source else None
    return (device == "cpu" and src is not None and src.dtype == tp.dtype and src.shape == tp.shape
            and len(tp.ops) == 1 and tp.ops[0].kind == "lora" and tp.ops[0].magnitude is None
            and tp.dtype in FROM_SAFETENSORS)


class _Scratch:
    """Reused memory for the hot path: a ring of read buffers (the writer thread hands each back
    once written) and two fp32 work buffers: the read buffers and the delta sized by the largest
    merged tensor, the fp32 copy of the weight by one block of rows (math.merge_linear_into)."""

    RING = 3

    def __init__(self, tensors):
        import queue

        import torch

        n = max((t.shape[0] * t.shape[1] for t in tensors), default=0)
        nbytes = max((t.shape[0] * t.shape[1] * ITEMSIZE[t.dtype] for t in tensors), default=0)
        self.delta = torch.empty(n, dtype=torch.float32)
        wide = max((lm.wide_elements(t.shape[1]) for t in tensors if t.dtype != "F32"), default=0)
        self.wide = torch.empty(wide, dtype=torch.float32)
        self.free: queue.Queue = queue.Queue()
        for _ in range(self.RING if tensors else 0):
            self.free.put(torch.empty(nbytes, dtype=torch.uint8))

    def take(self):
        return self.free.get()

    def give(self, buf) -> None:
        self.free.put(buf)


def _read_into(files: _Files, info: TensorInfo, buf):
    view = memoryview(buf.numpy())[: info.nbytes]
    fd, got = files.fd(info.file), 0
    while got < info.nbytes:
        n = os.preadv(fd, [view[got:]], info.offset + got)
        if n == 0:
            from registry.errors import CorruptFile

            raise CorruptFile(f"{info.file.name} ended inside tensor {info.name}", path=str(info.file))
        got += n
    return buf[: info.nbytes].view(torch_dtype(info.dtype)).view(info.shape)


__all__ = ["stream_merge", "read_tensor"]
