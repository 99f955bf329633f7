"""peft's merge arithmetic, expression for expression (reference §1.2-1.9).

Bit-identity with peft depends on doing the very same torch operations on tensors with the very
same dtypes and memory layouts, not on doing "the same maths": `(B @ A) * s` is not `B @ (A * s)`,
`W += delta` (one rounding) is not `W += delta.to(W.dtype)` (two), and the DoRA norm is a
reduction whose summation order follows the layout. So each function below copies the lines of
peft 0.21.2 it stands for (named in its docstring) and should be changed only together with them.
A, B, magnitudes and lora biases arrive as stored in the adapter file and are upcast to fp32 here,
as `cast_adapter_dtype(autocast_adapter_dtype=True)` does when peft loads them.
"""

from __future__ import annotations

import torch


def _t(w: torch.Tensor, fan_in_fan_out: bool) -> torch.Tensor:
    # peft.utils.other.transpose
    return w.T if fan_in_fan_out else w


def delta_weight(a: torch.Tensor, b: torch.Tensor, scaling: float, fan_in_fan_out: bool) -> torch.Tensor:
    """`lora.Linear.get_delta_weight` with fp32 adapter weights: `transpose(B @ A, fifo) * scaling`."""
    return _t(b.float() @ a.float(), fan_in_fan_out) * scaling


def merge_linear(w: torch.Tensor, a, b, scaling: float, fan_in_fan_out: bool, magnitude=None) -> torch.Tensor:
    """`lora.Linear.merge(safe_merge=False)` for Linear and Conv1D; returns the merged weight.

    Vanilla LoRA adds in place (`W.data += delta`: fp32 sum, one rounding). DoRA follows
    `DoraLinearVariant.merge_unsafe` and `DoraLinearLayer.get_weight_norm`.
    """
    delta = delta_weight(a, b, scaling, fan_in_fan_out)
    if magnitude is None:
        w += delta
        return w
    base_weight = w.clone()  # peft's _unmerged_base_weight() yields a clone
    weight = _t(base_weight, fan_in_fan_out)
    weight = weight + 1 * _t(delta, fan_in_fan_out)
    weight_norm = torch.linalg.norm(weight, dim=1).to(weight.dtype)
    dora_factor = magnitude.float() / weight_norm
    dora_factor = _t(dora_factor.view(-1, 1), fan_in_fan_out)
    return (dora_factor * (w + delta)).to(w.dtype)


BLOCK = 1 << 17  # elements per block of the in-place merge: 512 KiB of fp32, which stays in L2


def wide_elements(row_length: int) -> int:
    """The fp32 work buffer `merge_linear_into` needs for a weight whose rows have `row_length` elements."""
    return max(1, BLOCK // max(1, row_length)) * row_length


def merge_linear_into(w: torch.Tensor, a, b, scaling: float, fan_in_fan_out: bool,
                      delta_buf: torch.Tensor, wide_buf: torch.Tensor) -> bool:
    """Vanilla `merge_linear` in place, through reused fp32 buffers: the same bits, 3-4x faster.

    Fresh multi-megabyte tensors cost more in page faults than the arithmetic, and torch's mixed
    `bf16 += fp32` kernel is slow. Equalities relied upon (tests/merge check them bit for bit):
    `matmul(out=)` is `B @ A`; `mul_(s)` is `* s`; and `W += delta` computes `fp32(W) + delta` and
    rounds once to W's dtype, which is `wide.copy_(W); wide += delta; W.copy_(wide)`.

    The matmul runs once on the whole weight (its shape picks the kernel, as in peft); the
    element-wise steps after it run block by block of rows (`BLOCK` elements), so each block's
    delta, fp32 copy and weight stay in cache across the four passes instead of each pass
    streaming the whole tensor through memory. Element-wise operations give every element the
    same bits whatever the blocking (measured 1.4-1.5x faster on a 5632x2048 bf16 weight).
    `wide_buf` needs `wide_elements(w.shape[1])` elements.

    Returns whether every merged value is finite (`has_nonfinite`'s min/max test, made on each
    block while it is in cache rather than in another pass over the weight).
    """
    out_f, in_f = b.shape[0], a.shape[1]
    d = torch.matmul(b.float(), a.float(), out=delta_buf[: out_f * in_f].view(out_f, in_f))
    delta = _t(d, fan_in_fan_out)  # w's shape
    rows = max(1, BLOCK // max(1, w.shape[1]))
    extremes: list[torch.Tensor] = []
    for i in range(0, w.shape[0], rows):
        dd, ww = delta[i : i + rows], w[i : i + rows]
        dd.mul_(scaling)
        if w.dtype == torch.float32:
            ww += dd
        else:
            wide = wide_buf[: ww.numel()].view(ww.shape)
            wide.copy_(ww)
            wide += dd
            ww.copy_(wide)
        extremes.extend(torch.aminmax(ww))  # NaN propagates into both
    return not extremes or bool(torch.isfinite(torch.stack(extremes)).all())


def has_nonfinite(w: torch.Tensor) -> bool:
    """Any inf/NaN, via min and max (both propagate NaN): one pass and no temporaries, where
    isfinite() would allocate a full-size mask (slow, and it fragments the heap)."""
    if w.numel() == 0:
        return False
    lo, hi = torch.aminmax(w)
    return not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi)))


def embedding_delta(a: torch.Tensor, b: torch.Tensor, scaling: float) -> torch.Tensor:
    """`lora.Embedding.get_delta_weight`: `(B_e @ A_e).T * scaling`, fp32."""
    return _t(b.float() @ a.float(), True) * scaling


def merge_embedding(w: torch.Tensor, a, b, scaling: float, magnitude=None) -> torch.Tensor:
    """`lora.Embedding.merge(safe_merge=False)`: the delta is cast to W's dtype before the add.

    DoRA follows `DoraEmbeddingVariant.merge_unsafe` (one rounding, norm over the embedding dim).
    """
    delta = embedding_delta(a, b, scaling)
    if magnitude is None:
        w += delta.to(w.dtype)
        return w
    base_weight = w.clone()
    weight = _t(base_weight, True)
    weight = weight + 1 * delta.T
    weight_norm = torch.linalg.norm(weight, dim=1).to(weight.dtype)
    dora_factor = magnitude.float() / weight_norm
    dora_factor = dora_factor.view(1, -1)
    return (dora_factor * (w + delta)).to(w.dtype)


def merge_lora_bias(bias: torch.Tensor, lora_b_bias: torch.Tensor, scaling: float) -> torch.Tensor:
    """`lora_bias=True`: `bias.data += lora_B.bias * scaling` (fp32 product, one rounding)."""
    bias += lora_b_bias.float() * scaling
    return bias


def replace(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A file tensor copied over a base parameter (`load_state_dict` -> `copy_`): cast to its dtype."""
    return value.to(dtype).contiguous()


def merge_tokens(w: torch.Tensor, rows: torch.Tensor, indices: tuple[int, ...]) -> torch.Tensor:
    """`TrainableTokensLayer.merge`: the saved rows (full rows, not deltas) replace W's rows."""
    index = torch.tensor(indices)
    return w.index_copy(dim=0, index=index, source=rows.to(w))
