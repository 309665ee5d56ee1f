"""Device, precision, seeding, torch.distributed set-up, and stopping on signals."""
from __future__ import annotations

import contextlib
import os
import platform
import random
import signal
import time
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from utils.errors import ConfigError

T = TypeVar("T")


def machine_description() -> dict:
    """What this process computes on: CPU model and cores, memory, torch threads and version, GPU (or None), date."""
    cpu = platform.processor() or "unknown"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as file:
            cpu = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), cpu)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no such facts on this system
        memory = 0
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory / 2 ** 30, 1),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M")}


@dataclass(frozen=True)
class Runtime:
    """Where and how this process computes: device, precision, and its place among processes."""

    device: torch.device
    precision: str  # "fp32" | "bf16" | "fp16"
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True for the one process that prints and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when several processes train one model together."""
        return self.world_size > 1


def select_device(name: str) -> torch.device:
    """The torch.device for `auto|cpu|cuda|mps`; auto takes CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps was asked for, but MPS is not available")
    return torch.device(name)


def cpu_bf16_native(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when this CPU computes bfloat16 in hardware (Intel AMX or AVX512-BF16, AMD Zen 4 and
    later) and PyTorch's oneDNN can use it; False when unsure (e.g. no /proc/cpuinfo)."""
    try:
        with open(cpuinfo) as f:
            flags = set(f.read().split())
    except OSError:
        return False
    query = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool({"amx_bf16", "avx512_bf16"} & flags) and torch.backends.mkldnn.is_available() and bool(
        query is not None and query())


def select_precision(name: str, device: torch.device, cpu_bf16: bool = False) -> str:
    """The arithmetic to train in. auto: bf16 on CUDA GPUs that support it (else fp16); on a CPU,
    bf16 only where the model gains from it (`cpu_bf16`) and the CPU has native bf16, else fp32."""
    if name != "auto":
        if name == "fp16" and device.type == "cpu":
            raise ConfigError("--precision fp16 needs a GPU; use fp32 or bf16 on the CPU")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and cpu_bf16 and cpu_bf16_native() else "fp32"


def autocast(runtime: Runtime, cache: bool = True) -> contextlib.AbstractContextManager:
    """The autocast context for the runtime's precision (a no-op for fp32); `cache`: keep the weights'
    low-precision copies for the context's duration (off while recording a CUDA graph)."""
    if runtime.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if runtime.precision == "bf16" else torch.float16
    return torch.autocast(device_type=runtime.device.type, dtype=dtype, cache_enabled=cache)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one epoch on one process: random numbers depend only on (seed, epoch, rank)."""
    return seed * 1_000_003 + epoch * 1_009 + rank


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def init_runtime(device_name: str, precision_name: str, cpu_bf16: bool = False) -> Runtime:
    """Set up this process: join the torchrun process group if launched by torchrun. `cpu_bf16`:
    the model trains faster in bf16 on CPUs that have it, at the same accuracy (see select_precision)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = select_device(device_name)
    if world_size > 1:
        if device.type == "cuda":
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(f"torchrun started more processes on this machine than it has CUDA GPUs "
                                  f"({torch.cuda.device_count()}): give --nproc_per_node {torch.cuda.device_count()}, "
                                  "or --device cpu")
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device, select_precision(precision_name, device, cpu_bf16), rank, world_size)


def all_reduce_sum(values: list[float], runtime: Runtime) -> list[float]:
    """Element-wise sum of `values` over all processes (the values themselves when alone)."""
    if not runtime.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64,
                          device=runtime.device if runtime.device.type == "cuda" else "cpu")
    dist.all_reduce(tensor)
    return tensor.tolist()


def shutdown(runtime: Runtime) -> None:
    """Leave the process group, if any."""
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


PEER_FAILURE_WORDS = ("gloo", "nccl", "connection reset", "connection closed", "broken pipe", "timed out")


def peer_failed(error: BaseException) -> bool:
    """Whether `error`, raised in a process of a distributed run, says that another process is gone
    (its collective broke) rather than that this process has a bug."""
    return isinstance(error, dist.DistError) or any(word in str(error).lower() for word in PEER_FAILURE_WORDS)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """While active, SIGINT and SIGTERM only raise a flag, checked by the engine after each step."""
    requested = []
    previous = {}

    def handler(signum, frame):
        requested.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield lambda: bool(requested)
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def main_process_first(runtime: Runtime, build: Callable[[], T]) -> T:
    """`build()` in the main process, then (after it, so that they find what it cached) in the others."""
    if not runtime.distributed:
        return build()
    if runtime.is_main:
        built = build()
        dist.barrier()
        return built
    dist.barrier()
    return build()
