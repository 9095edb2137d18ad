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


def shard_model(root: torch.nn.Module, device: torch.device, reshard_after_forward: bool = True):
    """Shard every decoder layer and vision block, then the root (embeddings, LM head, norms, merger)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for module in root.modules():
        if type(module).__name__ in ("Qwen2_5_VLDecoderLayer", "Qwen2_5_VLVisionBlock"):
            fully_shard(module, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(root, mesh=mesh, reshard_after_forward=reshard_after_forward)
    return root


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
