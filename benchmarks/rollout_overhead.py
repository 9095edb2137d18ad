"""What the Ray rollout pool costs over calling the engine directly (not a test; medians and a ratio).

    .venv/bin/python benchmarks/rollout_overhead.py [--requests 8] [--gen 32] [--repeats 5]

The same generation batch (prompts with a 16-frame clip held in the object store, fixed-length turns) runs
(a) on an `HFEngine` in this process and (b) through `RolloutPool.generate`: a Ray actor call, the frames fetched
by reference from the object store, the weights-version check, results back. Both run one torch thread, one
after the other, so they see the same machine. The engine is the tiny CPU model, so its own time is small and
the pool's fixed cost per call is as visible as it gets: an upper bound for the pool's share on a real model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402

from vital_ray.config import ModelConfig, RolloutConfig  # noqa: E402
from vital_ray.rollout.engine import SamplingParams  # noqa: E402


def requests(codec, frames_ref, frames: np.ndarray, n: int, gen: int) -> list[dict]:
    from vital_ray import prompts
    from vital_ray.rollout.trajectory import VideoRef

    ref = VideoRef(frames, frames.shape, 2.0, 0.0, 8.0)
    ids = codec.encode(prompts.prompt_string("what happens in the video?", 8.0, None), [ref])
    return [{"key": str(i), "token_ids": list(ids), "videos": [(frames_ref, ref.second_per_grid)],
             "max_new_tokens": gen} for i in range(n)]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer

    from actors.rollout import RolloutPool, to_gen_requests
    from vital_ray.models import ensure_model_folder
    from vital_ray.rollout.engine import HFEngine
    from vital_ray.rollout.trajectory import TokenCodec

    torch.set_num_threads(1)
    path = ensure_model_folder(ModelConfig())
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}})
    codec = TokenCodec(AutoTokenizer.from_pretrained(path))
    frames = np.random.default_rng(0).integers(0, 255, (16, 112, 196, 3), dtype=np.uint8)
    reqs = requests(codec, ray.put(frames), frames, args.requests, args.gen)
    sampling = SamplingParams(temperature=1.0, seed=0, stop_strings=(), ignore_eos=True)
    engine = HFEngine(path)
    pool = RolloutPool(path, RolloutConfig(num_workers=1, num_cpus_per_worker=1), ModelConfig())

    def direct() -> int:
        return sum(len(r.token_ids) for r in engine.generate(to_gen_requests(reqs), sampling))

    def pooled() -> int:
        return sum(len(r.token_ids) for r in asyncio.run(pool.generate(reqs, sampling)))

    times: dict[str, list[float]] = {"engine": [], "pool": []}
    tokens = direct() + pooled()  # warm-up both
    for _ in range(args.repeats):  # interleaved, so drift hits both
        for name, fn in (("engine", direct), ("pool", pooled)):
            t0 = time.perf_counter()
            tokens = fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"requests": args.requests, "gen_tokens_per_request": args.gen, "tokens_per_call": tokens,
           "engine_s_median": med["engine"], "pool_s_median": med["pool"],
           "engine_tokens_per_s": tokens / med["engine"], "pool_tokens_per_s": tokens / med["pool"],
           "pool_overhead": 1.0 - med["engine"] / med["pool"], "pool_extra_ms_per_call": 1e3 * (med["pool"] - med["engine"]),
           "times": times}
    print(json.dumps(out, indent=1))
    pool.shutdown()
    ray.shutdown()
    return out


if __name__ == "__main__":
    main()
