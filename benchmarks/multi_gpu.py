"""Disaggregated pools on several GPUs (Ray): rollout pool on GPU 0, FSDP2 learner pool (NCCL) on the others,
clip-tool pool on CPUs. Measures the step's phase split, weight sync learner -> rollout over NCCL (bucketed
broadcast, GPU to GPU) against the object-store path (numpy buckets through Ray), and learner scaling over
1, 2 (and 4 when there are enough GPUs) learner GPUs on the same samples.

    python benchmarks/multi_gpu.py --preset 3b --backend vllm --out benchmarks/results/multi_gpu_h200x2.json
    python benchmarks/multi_gpu.py --preset tiny --backend hf --cpu-fake-gpus 2 --trajs 2 --gen 4   # CPU dry run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
os.environ.update(NO_MULTICAST)

import numpy as np  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402

from benchmarks.gpu_step import (PEAK_BF16, build_requests, make_frame_dir, model_folder, save_result,  # noqa: E402
                                  train_flops)
from vital_ray.batch import TrainSample  # noqa: E402
from vital_ray.config import (AlgoConfig, LearnerConfig, ModelConfig, RolloutConfig, ToolConfig,  # noqa: E402
                              ToolPoolConfig, VideoViewConfig)
from vital_ray.rollout.engine import SamplingParams  # noqa: E402
from vital_ray.rollout.trajectory import TokenCodec, VideoRef  # noqa: E402


async def rollout(gen_pool, tools, trajs, turns, gen, codec, video, duration, seed):
    """Scripted multi-turn rollout through the pools: generate (rollout GPU), cut clips (tool actors, CPU)."""
    from vital_ray import prompts

    stats = {"gen_s": 0.0, "tool_s": 0.0, "new_tokens": 0}
    rng = np.random.default_rng(seed)
    sampling = SamplingParams(temperature=1.0, seed=seed, stop_strings=(), ignore_eos=True)
    for turn in range(turns):
        reqs = [{"key": str(i), "token_ids": t["ids"], "videos": [(v.frames, v.second_per_grid) for v in t["videos"]],
                 "max_new_tokens": gen} for i, t in enumerate(trajs)]
        t0 = time.perf_counter()
        res = await gen_pool.generate(reqs, sampling)
        stats["gen_s"] += time.perf_counter() - t0
        for t, r in zip(trajs, res):
            t["ids"] += r.token_ids
            t["mask"] += [1] * len(r.token_ids)
            t["lp"] += r.logprobs
            stats["new_tokens"] += len(r.token_ids)
        if turn == turns - 1:
            break
        t0 = time.perf_counter()
        starts = rng.uniform(0, duration - 40, len(trajs))
        outs = await asyncio.gather(*(tools.call("get_video_clip_frame", {"start_time": float(s),
                                                                         "end_time": float(s) + 30.0}, video, duration)
                                      for s in starts))
        for t, (meta, ref) in zip(trajs, outs):
            if not meta.get("ok"):
                raise RuntimeError(meta.get("error"))
            clip = VideoRef(ref, tuple(meta["shape"]), meta["fps"], meta["start"], meta["end"])
            ids = codec.encode(prompts.clip_turn_string(meta["text"], True), [clip])
            t["ids"] += ids
            t["mask"] += [0] * len(ids)
            t["lp"] += [0.0] * len(ids)
            t["videos"].append(clip)
        stats["tool_s"] += time.perf_counter() - t0
    return stats


def make_trajs(codec, view_frames: np.ndarray, view_fps: float, n: int) -> list[dict]:
    ref = ray.put(view_frames)
    trajs = build_requests(codec, view_frames, view_fps, n, 40)
    for t in trajs:
        t["videos"] = [VideoRef(ref, view_frames.shape, view_fps, 0.0, 0.0)]
    return trajs


def to_samples(trajs, seed=0) -> list[TrainSample]:
    rng = np.random.default_rng(seed)
    return [TrainSample(np.asarray(t["ids"], np.int64), np.asarray(t["mask"], np.int8), np.asarray(t["lp"], np.float32),
                        list(t["videos"]), float(rng.choice([-1.0, 1.0]))) for t in trajs]


def flops_of(config, samples):
    return train_flops(config, samples)  # VideoRef has .grid, as VideoInput


def timed_update(learner, samples) -> float:
    t0 = time.perf_counter()
    learner.policy_update(samples)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["tiny", "3b"], default="tiny")
    ap.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    ap.add_argument("--trajs", type=int, default=32)
    ap.add_argument("--turns", type=int, default=2)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--token-budget", type=int, default=16384)
    ap.add_argument("--cpu-fake-gpus", type=int, default=0, help="CPU dry run: fake this many GPUs in Ray")
    ap.add_argument("--gpu-mem", type=float, default=0.5)
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--tool-workers", type=int, default=8)
    ap.add_argument("--out", default="")
    ap.add_argument("--workdir", default="/tmp/vital_gpu_step")
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer

    from actors.learner import LearnerPool
    from actors.rollout import RolloutPool
    from actors.tools import ToolPool
    from vital_ray.tools.video_io import sample_global_view

    n_gpus = args.cpu_fake_gpus or torch.cuda.device_count()
    if n_gpus < 2:
        raise SystemExit(f"needs 2+ GPUs, found {n_gpus}")
    on_gpu = not args.cpu_fake_gpus
    os.makedirs(args.workdir, exist_ok=True)
    mcfg = ModelConfig(cache_dir=os.path.join(args.workdir, "models"), dtype="float32")
    path = model_folder(args.preset, args.workdir, "cuda" if on_gpu else "cpu")
    if on_gpu:
        torch.cuda.empty_cache()
    frame_video = os.path.join(args.workdir, "long.mp4")
    if os.path.isdir(os.path.splitext(frame_video)[0]):
        video, duration = frame_video, 600.0
    else:
        video, duration = make_frame_dir(args.workdir, 10.0)
    env = dict(NO_MULTICAST, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TOKENIZERS_PARALLELISM="false", VLLM_ENABLE_V1_MULTIPROCESSING="0")
    ray.init(num_cpus=args.tool_workers + 2 + 2 * n_gpus, num_gpus=n_gpus, include_dashboard=False,
             runtime_env={"env_vars": env}, log_to_driver=True)
    codec = TokenCodec(AutoTokenizer.from_pretrained(path))
    view = sample_global_view(video, duration, VideoViewConfig(max_frames=16, max_pixels=64 * 784), decoder="frames")
    tool_cfg = ToolConfig(decoder="frames", max_frames=32, max_pixels=64 * 784)
    tools = ToolPool(tool_cfg, VideoViewConfig(), ToolPoolConfig(min_workers=args.tool_workers, max_workers=args.tool_workers, num_cpus_per_worker=1,
                                                                 max_concurrency=4))
    gpu = 1 if on_gpu or args.cpu_fake_gpus else 0
    rcfg = RolloutConfig(backend=args.backend, num_workers=1, num_cpus_per_worker=2, num_gpus_per_worker=gpu,
                         gpu_memory_utilization=args.gpu_mem, load_format="dummy", max_model_len=32768,
                         batch_size=args.trajs)
    rmodel = ModelConfig(dtype="bfloat16" if on_gpu else "float32")
    n_learn = n_gpus - 1
    lcfg = LearnerConfig(num_workers=n_learn, num_cpus_per_worker=2, num_gpus_per_worker=gpu, lr=1e-6,
                         mixed_precision="bf16" if on_gpu else "none", activation_checkpointing=True,
                         max_tokens_per_micro_batch=args.token_budget, sync_bucket_mb=512)
    algo = AlgoConfig(kl_coef=0.0)
    t0 = time.perf_counter()
    gen_pool = RolloutPool(path, rcfg, rmodel)
    learner = LearnerPool(path, lcfg, algo, mcfg)
    setup_s = time.perf_counter() - t0
    placements = {"rollout": gen_pool.placements(), "learner": learner.placements()}
    dtype = "bfloat16" if on_gpu else "float32"
    first = learner.sync_nccl(gen_pool, 1, dtype)  # engine serves the learner's weights (and group setup)
    steps = []
    for step in range(args.steps):
        trajs = make_trajs(codec, view.frames, view.fps, args.trajs)
        ts = time.perf_counter()
        ro = asyncio.run(rollout(gen_pool, tools, trajs, args.turns, args.gen, codec, video, duration, step))
        t_ro = time.perf_counter() - ts
        samples = to_samples(trajs, step)
        t_train = timed_update(learner, samples)
        nccl = learner.sync_nccl(gen_pool, 2 + 2 * step, dtype)
        t_step = time.perf_counter() - ts
        t1 = time.perf_counter()  # the object-store path, same weights, for comparison
        entries, refs, gather_s = learner.push_weights()
        load_s = gen_pool.update_weights(entries, refs, 3 + 2 * step)
        store_s = time.perf_counter() - t1
        tokens = sum(s.num_tokens for s in samples)
        cfg = AutoConfigCache.get(path)
        steps.append({"step_s": t_step, "rollout_s": t_ro, "gen_s": ro["gen_s"], "tool_s": ro["tool_s"],
                      "train_s": t_train, "sync_nccl_s": nccl["sync/wall_s"], "sync_nccl_load_s": nccl["sync/load_s"],
                      "sync_object_store_s": store_s, "object_store_gather_s": gather_s, "object_store_load_s": load_s,
                      "sync_mb": nccl["sync/mb"], "gen_tokens": ro["new_tokens"],
                      "rollout_tokens_per_s": ro["new_tokens"] / t_ro, "tool_wait_share": ro["tool_s"] / t_step,
                      "learner_tokens": tokens, "learner_tokens_per_s": tokens / t_train,
                      "mfu_per_gpu": flops_of(cfg, samples) / t_train / PEAK_BF16 / n_learn,
                      "phase_share": {"rollout": t_ro / t_step, "train": t_train / t_step,
                                      "sync": nccl["sync/wall_s"] / t_step}})
        print("step", step, json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in steps[-1].items()}),
              flush=True)
    result = {"gpus": n_gpus, "device": torch.cuda.get_device_name(0) if on_gpu else "cpu (fake GPUs)",
              "backend": args.backend, "preset": args.preset, "trajs": args.trajs, "turns": args.turns,
              "gen": args.gen, "setup_s": setup_s, "first_sync": first, "placements": placements, "steps": steps}
    gen_pool.shutdown()
    learner.shutdown()
    if not args.skip_scaling:  # the learner alone on 1..n GPUs, same samples
        scaling = []
        for n in sorted({1, 2, min(4, n_gpus)} & set(range(1, n_gpus + 1))):
            pool = LearnerPool(path, LearnerConfig(**{**lcfg.__dict__, "num_workers": n}), algo, mcfg)
            timed_update(pool, samples)  # warm-up
            times = [timed_update(pool, samples) for _ in range(2)]
            t = statistics.median(times)
            scaling.append({"learner_gpus": n, "update_s": t, "tokens_per_s": tokens / t,
                            "mfu_per_gpu": flops_of(cfg, samples) / t / PEAK_BF16 / n})
            print("scaling", json.dumps(scaling[-1]), flush=True)
            pool.shutdown()
            time.sleep(2)
        result["scaling"] = scaling
        if len(scaling) > 1:
            result["speedup_1_to_max"] = scaling[0]["update_s"] / scaling[-1]["update_s"]
    tools.shutdown()
    save_result(result, args.out, skip=("steps", "placements"))
    ray.shutdown()
    return result


class AutoConfigCache:
    _cache: dict = {}

    @classmethod
    def get(cls, path):
        if path not in cls._cache:
            from transformers import AutoConfig

            cls._cache[path] = AutoConfig.from_pretrained(path)
        return cls._cache[path]


if __name__ == "__main__":
    main()
