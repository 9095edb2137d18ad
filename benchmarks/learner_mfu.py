"""Learner throughput and MFU on DGRPO-shaped samples, variants side by side in one process, optional profile.

    python benchmarks/learner_mfu.py --preset 3b --variants hf_vision_attn,base,no_ac --profile base   # GPU
    python benchmarks/learner_mfu.py --preset tiny --device cpu --samples 4 --gen 16                     # CPU dry run

Samples look like gpu_step.py's trajectories (prompt + 16-frame global view, a generated turn, a real clip-tool
result of up to 32 frames, another generated turn) but the generated tokens are random, so no rollout engine is
needed. Each variant builds a fresh learner, warms up with one update, then times `--steps` updates (median).
Variants: base (the library's defaults, no KL reference), hf_vision_attn (transformers' per-window ViT attention
loop), no_ac (no activation checkpointing), budget<N> (micro-batch token budget N), compile (torch.compile per
block), kl (k3 KL against a reference model: its frozen ViT features shared with the policy) and kl_unshared (the
reference runs its own ViT); "+" combines them (compile+no_ac). Times: the update, its ViT forwards, and its
input building (`_batch`: tokens, positions, patches).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.gpu_step import (PEAK_BF16, alloc_retries, make_frame_dir, model_folder,  # noqa: E402 (sets NCCL env)
                                  save_result, train_flops)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vital_ray.batch import TrainSample  # noqa: E402
from vital_ray.config import AlgoConfig, LearnerConfig, ModelConfig, ToolConfig, VideoViewConfig  # noqa: E402


def synthetic_samples(codec, video: str, duration: float, n: int, gen: int, view_frames: int, rng) -> list:
    from vital_ray import prompts
    from vital_ray.rollout.trajectory import VideoRef
    from vital_ray.tools.clip_tool import get_video_clip_frame
    from vital_ray.tools.video_io import sample_global_view

    view = sample_global_view(video, duration, VideoViewConfig(max_frames=view_frames, max_pixels=64 * 784),
                              decoder="frames")
    view_ref = VideoRef(view.frames, view.frames.shape, view.fps, 0.0, 0.0)
    prompt = codec.encode(prompts.prompt_string("what happens? " * 10, duration, None), [view_ref])
    tool_cfg = ToolConfig(decoder="frames", max_frames=32, max_pixels=64 * 784, draw_timestamps=True)
    vocab = 150000
    out = []
    for _ in range(n):
        start = float(rng.uniform(0, duration - 40))
        tr = get_video_clip_frame(video, start, start + 30.0, duration, tool_cfg)
        if not tr.ok:
            raise RuntimeError(tr.error)
        clip = VideoRef(tr.clip.frames, tr.clip.frames.shape, tr.clip.fps, tr.clip.start, tr.clip.end)
        turn = codec.encode(prompts.clip_turn_string(tr.text, True), [clip])
        g1, g2 = rng.integers(0, vocab, gen).tolist(), rng.integers(0, vocab, gen).tolist()
        ids = prompt + g1 + turn + g2
        mask = [0] * len(prompt) + [1] * gen + [0] * len(turn) + [1] * gen
        lp = rng.normal(-3.0, 1.0, len(ids)).astype(np.float32)
        out.append(TrainSample(np.asarray(ids, np.int64), np.asarray(mask, np.int8), lp, [view_ref, clip],
                               float(rng.choice([-1.0, 1.0]))))
    return out


def variant_config(name: str, budget: int) -> tuple[LearnerConfig, AlgoConfig, dict]:
    """A variant is "+"-joined changes to the base -> (learner config, algorithm config, knobs: batched ViT
    attention, shared reference ViT)."""
    cfg = dict(lr=1e-6, mixed_precision="bf16" if torch.cuda.is_available() else "none",
               activation_checkpointing=True, max_tokens_per_micro_batch=budget)
    knobs = {"batched": True, "share": True}
    kl = 0.0
    for part in name.split("+"):
        if part == "hf_vision_attn":
            knobs["batched"] = False
        elif part in ("kl", "kl_unshared"):
            kl, knobs["share"] = 0.01, part == "kl"
        elif part == "no_ac":
            cfg["activation_checkpointing"] = False
        elif part == "compile":
            cfg["compile"] = True
        elif part.startswith("budget"):
            cfg["max_tokens_per_micro_batch"] = int(part.removeprefix("budget"))
        elif part != "base":
            raise SystemExit(f"unknown variant part {part!r} in {name!r}")
    return LearnerConfig(**cfg), AlgoConfig(kl_coef=kl), knobs


class PhaseTimer:
    """Wall time spent in one phase: ViT forwards (the policy's and the reference's) through module hooks, input
    building by wrapping a method; device-synchronised around each."""

    def __init__(self, sync):
        self.total, self._t0, self.sync = 0.0, 0.0, sync

    def hook(self, modules) -> "PhaseTimer":
        for m in modules:
            m.register_forward_pre_hook(self._pre)
            m.register_forward_hook(self._post)
        return self

    def wrap(self, fn):
        def timed(*a, **kw):
            self._pre()
            try:
                return fn(*a, **kw)
            finally:
                self._post()
        return timed

    def _pre(self, *_):
        self.sync()
        self._t0 = time.perf_counter()

    def _post(self, *_):
        self.sync()
        self.total += time.perf_counter() - self._t0


def run_variant(name, path, samples, args, dev) -> dict:
    from vital_ray.models.attention import use_batched_vision_attention
    from vital_ray.training.learner import FSDPLearner

    lcfg, algo, knobs = variant_config(name, args.token_budget)
    learner = FSDPLearner(path, lcfg, algo, "float32", device=dev)
    learner.share_vision = learner.share_vision and knobs["share"]
    hf_model = learner.policy.model
    for m in (hf_model, learner.ref.model if learner.ref is not None else None):
        if m is not None:
            use_batched_vision_attention(m, knobs["batched"])
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    vt = PhaseTimer(sync).hook([m.model.model.visual for m in (learner.policy, learner.ref) if m is not None])
    bt = PhaseTimer(sync)
    learner._batch = bt.wrap(learner._batch)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    learner.policy_update(samples)  # warm-up (compiles, with `compile`)
    sync()
    warmup = time.perf_counter() - t0
    times, vis, build = [], [], []
    for _ in range(args.steps):
        vt.total = bt.total = 0.0
        sync()
        t0 = time.perf_counter()
        learner.policy_update(samples)
        sync()
        times.append(time.perf_counter() - t0)
        vis.append(vt.total)
        build.append(bt.total)
    profile = ""
    if name in args.profile:
        profile = profile_update(learner, samples, dev)
    flops = train_flops(learner.config, samples)
    t = statistics.median(times)
    tokens = sum(s.num_tokens for s in samples)
    res = {"variant": name, "update_s": t, "update_s_all": times, "warmup_s": warmup,
           "vision_fwd_s": statistics.median(vis),
           "batch_build_s": statistics.median(build),
           "tokens": tokens, "tokens_per_s": tokens / t, "tflops": flops / t / 1e12, "mfu": flops / t / PEAK_BF16,
           "micro_batches": len(learner._micro_batches(samples)),
           "peak_mem_gib": torch.cuda.max_memory_reserved() / 2**30 if dev.type == "cuda" else 0.0,
           "alloc_retries": alloc_retries()}
    print(f"{name}: {res['update_s']:.2f} s/update, vision fwd {res['vision_fwd_s']:.2f} s, "
          f"inputs {res['batch_build_s']:.2f} s, "
          f"{res['tokens_per_s']:.0f} tok/s, {res['tflops']:.1f} TFLOP/s, MFU {res['mfu']:.3f}", flush=True)
    if profile:
        print(profile, flush=True)
        res["profile"] = profile
    del learner, hf_model, vt, bt
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return res


def profile_update(learner, samples, dev) -> str:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        learner.policy_update(samples)
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    ka = prof.key_averages()
    busy = sum(getattr(e, "self_device_time_total", 0) for e in ka) / 1e6
    head = f"device busy {busy:.2f} s (sum of kernel self time)\n" if dev.type == "cuda" else ""
    return (head + ka.table(sort_by=key, row_limit=22, max_name_column_width=60) + "\n"
            + ka.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["tiny", "3b"], default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--gen", type=int, default=128, help="random tokens per generated turn")
    ap.add_argument("--view-frames", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--token-budget", type=int, default=16384)
    ap.add_argument("--variants", default="hf_vision_attn,base")
    ap.add_argument("--profile", default="", help="comma-separated variants to profile once more")
    ap.add_argument("--out", default="")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "vital_gpu_step"))
    args = ap.parse_args(argv)
    args.profile = [p for p in args.profile.split(",") if p]
    dev = torch.device(args.device)
    os.makedirs(args.workdir, exist_ok=True)

    from transformers import AutoTokenizer

    from vital_ray.rollout.trajectory import TokenCodec
    from vital_ray.training import fsdp

    path = model_folder(args.preset, args.workdir, args.device)
    codec = TokenCodec(AutoTokenizer.from_pretrained(path))
    video, duration = make_frame_dir(args.workdir, 10.0)
    samples = synthetic_samples(codec, video, duration, args.samples, args.gen, args.view_frames,
                                np.random.default_rng(0))
    fsdp.init_distributed(0, 1, "127.0.0.1", fsdp.free_port(), "nccl" if dev.type == "cuda" else "gloo")
    results = [run_variant(v, path, samples, args, dev) for v in args.variants.split(",")]
    base = {r["variant"]: r for r in results}
    ratios = {f"{r['variant']}_speedup_vs_{results[0]['variant']}": results[0]["update_s"] / r["update_s"]
              for r in results[1:]}
    out = {"device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu", "preset": args.preset,
           "samples": args.samples, "seq_len_mean": results[0]["tokens"] / args.samples, "variants": base,
           "ratios": ratios, "torch": torch.__version__}
    save_result(out, args.out, skip=("variants",))
    return out


if __name__ == "__main__":
    main()
