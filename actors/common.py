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
