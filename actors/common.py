"""Small shared helpers for actor processes."""

from __future__ import annotations

import os


def limit_threads(n: int = 1) -> None:
    """One torch thread per actor: on small nodes several actors share the cores."""
    import torch

    torch.set_num_threads(max(1, n))
    os.environ.setdefault("OMP_NUM_THREADS", str(n))


def resources(num_cpus: float, num_gpus: float) -> dict:
    return {"num_cpus": num_cpus, "num_gpus": num_gpus}


def wait_placed(refs: list, what: str, timeout_s: float = 180.0) -> list:
    """ray.get with a start-up deadline: an actor that cannot be placed fails the job with a clear message
    instead of hanging forever."""
    import ray

    try:
        return ray.get(refs, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise RuntimeError(
            f"{what} did not start within {timeout_s:.0f}s: the cluster probably lacks the resources they ask for "
            f"(available: {ray.available_resources()}); lower num_cpus_per_worker/num_workers or add nodes"
        ) from None


def free_port_outside_ray_range() -> int:
    """A free local port below Ray's worker range (10002-19999), e.g. for the metrics export port."""
    import socket

    for port in range(8090, 9990):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in 8090-9989")
