"""torch.distributed + FSDP2 (`fully_shard`) helpers, identical for gloo/CPU and NCCL/GPU."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import torch
import torch.distributed as dist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(rank: int, world: int, addr: str, port: int, backend: str = "auto", timeout_s: int = 600):
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    os.environ.update(MASTER_ADDR=addr, MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))
    return backend


def device_for(backend: str) -> torch.device:
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


BLOCKS = ("Qwen2_5_VLDecoderLayer", "Qwen2_5_VLVisionBlock")  # the repeated layers: FSDP units, compile units


def _blocks(root: torch.nn.Module):
    return [m for m in root.modules() if type(m).__name__.removeprefix("FSDP") in BLOCKS]


def compile_blocks(root: torch.nn.Module) -> None:
    """torch.compile each decoder layer's and vision block's `forward` (fused norms, rotary, SwiGLU; the
    layers share one compiled graph). Only `forward`: FSDP's gathers and activation checkpointing stay in
    eager around it."""
    import torch._dynamo

    # Micro-batch length, batch size and patch count change every call: dynamo compiles a shape-generic graph
    # on the second shape, but the layers still need several (mask or none, batch of 1, grad or no_grad, each
    # first static); past the default limit of 8, dynamo would silently run a new variant eagerly.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
    for block in _blocks(root):
        block.forward = torch.compile(block.forward)


def shard_model(root: torch.nn.Module, device: torch.device, reshard_after_forward: bool = True,
                mixed_precision: str = "none"):
    """Shard every decoder layer and vision block, then the root (embeddings, LM head, norms, merger).
    mixed_precision="bf16": parameters stay fp32 (the optimizer's master copy), forward/backward run in bf16 and
    gradients are reduced in fp32."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    kw = {"mesh": mesh, "reshard_after_forward": reshard_after_forward}
    if mixed_precision == "bf16":
        kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for module in _blocks(root):
        fully_shard(module, **kw)
    fully_shard(root, **kw)
    return root


def iter_full_tensors(root: torch.nn.Module, dtype: torch.dtype | None = None):
    """Collective, one parameter at a time (all ranks, same order): yields (name, full tensor on this rank's
    device), cast to `dtype`. The GPU-to-GPU sync path: no CPU copy, peak memory one full parameter."""
    for name, t in root.state_dict().items():
        full = t.full_tensor() if hasattr(t, "full_tensor") else t
        yield name, full.to(dtype) if dtype is not None else full


def full_state_dict(root: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Collective: every rank must call. Rank 0 gets the full CPU state dict, others an empty dict."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(root, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def grad_norm_value(norm) -> float:
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


def mean_over_ranks(metrics: dict[str, float]) -> dict[str, float]:
    """Collective: average each metric over ranks (`tokens` is summed)."""
    import torch.distributed as dist

    keys = sorted(metrics)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    world = dist.get_world_size()
    return {k: float(v) if k == "tokens" else float(v) / world for k, v in zip(keys, t.tolist())}
