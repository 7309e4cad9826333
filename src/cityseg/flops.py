"""Model cost: FLOPs as the efficiency server counts them, parameters, and latency.

The efficiency benchmark (inferred, see ``docs/competition.md``) counts FLOPs of the whole
``Model()`` on one 1x3x1024x2048 input with ``torch.utils.flop_counter.FlopCounterMode``: 2 x
the multiply-accumulates of convolutions and matrix products, nothing for element-wise ops,
normalisation, pooling or interpolation. A resize inside ``forward`` therefore lowers the count
(the layers after it see fewer pixels); a resize in pre-processing does not.

``count_flops`` runs the model on the *meta* device: tensors there carry shapes but no data, so
the count is exact for shape-determined models and costs no compute or memory.
"""

from __future__ import annotations

import contextlib
import copy
import io
import statistics
import time
import warnings

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def _meta_copy(model: nn.Module) -> nn.Module:
    """Deep copy of ``model`` whose parameters and buffers live on the meta device.

    The memo maps every real tensor to a meta stand-in, so the copy never duplicates weights.
    """
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo).eval()


def _cpu_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).to("cpu").eval()


def _param_dtype(model: nn.Module) -> torch.dtype:
    p = next(model.parameters(), None)
    return p.dtype if p is not None and p.is_floating_point() else torch.float32


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    if not (len(size) == 2 and all(isinstance(s, (int, np.integer)) and s > 0 for s in size)):
        raise ValueError(f"size must be (height, width) positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def _flop_count(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def count_flops(model: nn.Module, size: tuple[int, int] = (1024, 2048), in_channels: int = 3) -> int:
    """FLOPs (FlopCounterMode, = 2 x MACs) of one forward pass on a (1, 3, H, W) input, eval mode.

    Runs on a meta-device copy; falls back, with a warning, to a real CPU forward on a copy if
    the model cannot run on meta. The caller's model (device, mode, weights) is never touched.
    """
    h, w = _check_size(size)
    try:
        meta = _meta_copy(model)
        return _flop_count(meta, torch.empty(1, in_channels, h, w, device="meta", dtype=_param_dtype(model)))
    except Exception as exc:  # any op without a meta kernel, data-dependent control flow, ...
        warnings.warn(
            f"count_flops: the model cannot run on the meta device ({type(exc).__name__}: {exc}); "
            f"counting with a real CPU forward at {h}x{w} instead (slow, uses memory)",
            RuntimeWarning,
            stacklevel=2,
        )
    cpu = _cpu_copy(model)
    return _flop_count(cpu, torch.zeros(1, in_channels, h, w, dtype=_param_dtype(cpu)))


def count_macs_ptflops(
    model: nn.Module, size: tuple[int, int] = (1024, 2048), in_channels: int = 3, meta: bool = True
) -> int:
    """MACs by ptflops (its pytorch backend) as an independent cross-check of ``count_flops``.

    ptflops counts, per module, convolutions and linear layers plus biases, BatchNorm,
    activations, pooling and ``nn.Upsample``, so expect MACs slightly above ``count_flops / 2``.

    ``meta=True`` (default): a meta-device copy with ptflops' module hooks only; free, but calls
    through ``torch.nn.functional`` / ``torch.matmul`` inside ``forward`` (e.g. ``F.interpolate``,
    attention products) are not counted. Functional counting must be off on meta: there torch
    runs Python decompositions of ops such as bilinear interpolation built from ``torch.mul``,
    which ptflops' patches would count as huge (wrongly broadcast) element-wise products.
    ``meta=False``: ptflops' full default (functional ops counted too) on a real CPU forward of a
    copy at the full ``size``: slow for big models, and ptflops then counts each ``nn.ReLU``
    twice (its module hook plus the patched ``F.relu`` the module calls). A small input scaled up by the pixel ratio
    would be wrong for models with fixed-size ops (adaptive pooling), so it is not offered.
    """
    from ptflops import get_model_complexity_info

    h, w = _check_size(size)
    net = _meta_copy(model) if meta else _cpu_copy(model)
    buf = io.StringIO()
    # ptflops prints failures to stdout and returns None: keep the text for our error.
    with contextlib.redirect_stdout(buf), torch.no_grad():
        macs, _ = get_model_complexity_info(
            net,
            (in_channels, h, w),
            as_strings=False,
            print_per_layer_stat=False,
            verbose=False,
            ost=buf,
            backend="pytorch",
            backend_specific_config={"count_functional": not meta},
        )
    if macs is None:
        where = "on the meta device (try meta=False)" if meta else "on the CPU"
        raise RuntimeError(f"count_macs_ptflops: ptflops could not analyse the model {where}: {buf.getvalue().strip()[-500:]}")
    return int(macs)


def _check_latency_args(device, dtype: torch.dtype, runs: int, warmup: int) -> torch.device:
    """Validate ``measure_latency``'s arguments; return the device as a ``torch.device``."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available")
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
    return device


def _time_runs(forward, device: torch.device, warmup: int, runs: int, budget_s: float | None,
               min_runs: int) -> list[float]:
    """Milliseconds of each timed ``forward()`` after ``warmup`` untimed ones; CUDA synchronised."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        forward()
    sync()
    times_ms: list[float] = []
    for i in range(runs):
        start = time.perf_counter()
        forward()
        sync()
        times_ms.append((time.perf_counter() - start) * 1000.0)
        if budget_s is not None and i + 1 >= min_runs and sum(times_ms) > budget_s * 1000.0:
            break
    return times_ms


def measure_latency(
    model: nn.Module,
    size: tuple[int, int] = (1024, 2048),
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    warmup: int = 5,
    runs: int = 50,
    threads: int | None = None,
    channels_last: bool = False,
    in_channels: int = 3,
    budget_s: float | None = None,
    min_runs: int = 3,
) -> dict:
    """Batch-1 inference latency of ``model`` at ``size`` under ``torch.inference_mode``.

    ``dtype`` float32 runs plainly; bfloat16/float16 run under autocast on ``device``. On CUDA
    the device is synchronised around every timed run. ``threads`` sets torch's intra-op
    threads for the measurement only (restored afterwards). The model is deep-copied, so the
    caller's model keeps its device and mode.

    ``budget_s`` caps the timed phase: after at least ``min_runs`` runs, timing stops once the
    budget is spent (a heavy model on a laptop CPU would otherwise take minutes); ``runs`` in
    the result is the number actually timed.

    Returns ``median_ms``, ``mean_ms``, ``p90_ms``, ``fps`` (= 1000 / median), ``runs``,
    ``threads``, ``device``, ``dtype``, ``size``, ``channels_last``.
    """
    h, w = _check_size(size)
    device = _check_latency_args(device, dtype, runs, warmup)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        net = copy.deepcopy(model).to(device).eval()
        x = torch.rand(1, in_channels, h, w, device=device)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = (
            torch.autocast(device_type=device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            times_ms = _time_runs(lambda: net(x), device, warmup, runs, budget_s, min_runs)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(old_threads)

    median = statistics.median(times_ms)
    return {
        "median_ms": median,
        "mean_ms": statistics.fmean(times_ms),
        "p90_ms": float(np.percentile(times_ms, 90)),
        "fps": 1000.0 / median if median > 0 else float("inf"),
        "runs": len(times_ms),
        "threads": used_threads,
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "size": [h, w],
        "channels_last": channels_last,
    }
