"""Run a function in spawned processes (one per rank) and collect what each puts on the queue; a child that
dies fails the test at once with its exit code and the tail of its output, not after the queue's timeout."""

from __future__ import annotations

import torch.multiprocessing as mp
import os
import queue as queue_mod
import tempfile
import time


def _child(target, log_path, args):
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    target(*args)


def _tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no output)"


def spawn_ranks(target, world: int, args: tuple = (), timeout: float = 240) -> dict:
    """`target(rank, *args, queue)` in `world` spawned processes, each putting `(rank, result)` once;
    -> {rank: result}."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    logs = tempfile.mkdtemp(prefix="spawn-")
    procs = [ctx.Process(target=_child, args=(target, os.path.join(logs, f"rank{r}.log"), (r, *args, q)))
             for r in range(world)]
    for p in procs:
        p.start()
    out: dict = {}
    deadline = time.monotonic() + timeout
    try:
        while len(out) < world:
            try:
                rank, result = q.get(timeout=0.5)
                out[rank] = result
                continue
            except queue_mod.Empty:
                pass
            for r, p in enumerate(procs):
                if p.exitcode not in (None, 0):
                    raise AssertionError(f"rank {r} exited with code {p.exitcode} before reporting; its output "
                                         f"ends:\n{_tail(os.path.join(logs, f'rank{r}.log'))}")
            if all(p.exitcode == 0 for p in procs):
                try:  # a result still in the pipe after its writer exited
                    rank, result = q.get(timeout=5)
                    out[rank] = result
                    continue
                except queue_mod.Empty:
                    missing = sorted(set(range(world)) - set(out))
                    raise AssertionError(f"ranks {missing} exited with code 0 without reporting") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"no result from ranks {sorted(set(range(world)) - set(out))} in {timeout} s")
        for r, p in enumerate(procs):
            p.join(60)
            log = os.path.join(logs, f"rank{r}.log")
            assert p.exitcode == 0, f"rank {r} exited with code {p.exitcode}; its output ends:\n{_tail(log)}"
        return out
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(10)
