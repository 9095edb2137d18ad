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


def gang_options(n: int, num_cpus: float, num_gpus: float, what: str, timeout_s: float = 180.0):
    """-> (per-actor Ray options for a pool of `n`, placement group or None). GPU pools get a placement group (one
    {CPU, GPU} bundle per actor, PACK): the pool is placed whole or not at all, and its GPUs are reserved, so pools
    never share a GPU; the pool removes the group when it shuts down (`release`). CPU pools use plain resources."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    base = {"num_cpus": num_cpus, "num_gpus": num_gpus}
    if num_gpus <= 0:
        return [dict(base) for _ in range(n)], None
    bundle = {"CPU": num_cpus, "GPU": num_gpus} if num_cpus > 0 else {"GPU": num_gpus}
    pg = ray.util.placement_group([dict(bundle) for _ in range(n)], strategy="PACK")
    try:
        wait_placed([pg.ready()], f"placement group of {what} ({n} x {bundle})", timeout_s)
    except RuntimeError:
        ray.util.remove_placement_group(pg)  # a pending group would grab the GPUs once they free up
        raise
    return [dict(base, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i))
            for i in range(n)], pg


def release(pg) -> None:
    """Give a pool's reserved resources back (after its actors are killed)."""
    if pg is not None:
        import ray

        ray.util.remove_placement_group(pg)


def placement() -> dict:
    """Where this actor runs: node id and the GPU ids Ray assigned it (tests and operators check disjointness)."""
    import ray

    ctx = ray.get_runtime_context()
    return {"node": ctx.get_node_id(), "gpus": [str(g) for g in ray.get_gpu_ids()]}
