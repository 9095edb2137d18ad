"""On real GPUs only (skipped elsewhere): the NCCL bucketed broadcast between two GPUs, and the FSDP2 learner on
CUDA (bf16 mixed precision, activation checkpointing, token-budget micro-batches over 2 NCCL ranks, compiled
blocks against eager, pixels normalised on the GPU)."""

import os

import numpy as np
import pytest
import torch

from tests.spawn import spawn_ranks

if torch.cuda.device_count() < 1:
    pytest.skip("needs a GPU", allow_module_level=True)
os.environ.update(NCCL_NVLS_ENABLE="0", TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1")


def _bcast(rank, port, q):
    from vital_ray.training import weight_broadcast as wb
    from vital_ray.training.weights import plan_buckets

    torch.cuda.set_device(rank)
    dev = torch.device("cuda", rank)
    g = wb.SyncGroup("127.0.0.1", port, rank, 2, dev)
    gen = torch.Generator(device="cpu").manual_seed(0)
    state = {f"w{i}": torch.randn(1024, 1024 + i, generator=gen).to(torch.bfloat16) for i in range(6)}
    state["f"] = torch.randn(333, generator=gen)
    entries = plan_buckets([(k, v.dtype, tuple(v.shape)) for k, v in state.items()], 4)
    if rank == 0:
        wb.send_stream(g, ((k, v.to(dev)) for k, v in state.items()), entries)
        q.put((rank, True))
    else:
        got = {}
        wb.receive_state(g, entries, lambda d: got.update({k: v.cpu().clone() for k, v in d.items()}))
        q.put((rank, all(torch.equal(got[k], v) for k, v in state.items()) and len({e.bucket for e in entries}) > 1))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_nccl_bucketed_broadcast_is_exact_gpu():
    from vital_ray.training.fsdp import free_port

    assert spawn_ranks(_bcast, 2, (free_port(),), timeout=90) == {0: True, 1: True}


def _learn(rank, world, port, path, q):
    from tests.test_gpu_learner_options import _samples
    from vital_ray.config import AlgoConfig, LearnerConfig
    from vital_ray.training import fsdp
    from vital_ray.training.learner import FSDPLearner

    os.environ["LOCAL_RANK"] = str(rank)
    backend = fsdp.init_distributed(rank, world, "127.0.0.1", port, "nccl")
    dev = fsdp.device_for(backend)
    samples = _samples(path, [0] if rank == 0 else [0, 60, 60])
    lrn = FSDPLearner(path, LearnerConfig(lr=1e-4, mixed_precision="bf16", activation_checkpointing=True,
                                          max_tokens_per_micro_batch=90), AlgoConfig(kl_coef=0.0), device=dev)
    m = lrn.policy_update(samples)
    q.put((rank, {"grad": m["grad_norm"], "tokens": m["tokens"], "mbs": len(lrn._micro_batches(samples)),
                  "fp32": all(p.dtype == torch.float32 for p in lrn.policy.parameters())}))


def test_fsdp2_bf16_checkpointing_token_budget_on_cuda_gpu(tmp_path):
    from tests.test_gpu_learner_options import _spawn
    from vital_ray.config import ModelConfig
    from vital_ray.models import ensure_model_folder

    path = ensure_model_folder(ModelConfig(tiny_hidden=256, cache_dir=str(tmp_path)))
    res = _spawn(min(2, torch.cuda.device_count()), path, _learn, timeout=150)
    assert all(np.isfinite(r["grad"]) and r["grad"] > 0 and r["fp32"] for r in res.values())
    assert len({r["mbs"] for r in res.values()}) == 1


def _compiled(rank, world, port, path, q):
    from tests.test_gpu_learner_options import _samples
    from vital_ray.config import AlgoConfig, LearnerConfig
    from vital_ray.models.vision import frames_to_patches
    from vital_ray.training import fsdp
    from vital_ray.training.learner import FSDPLearner

    fsdp.init_distributed(rank, world, "127.0.0.1", port, "nccl")
    dev = fsdp.device_for("nccl")
    frames = np.random.default_rng(0).integers(0, 255, (3, 56, 84, 3), dtype=np.uint8)
    on_gpu, on_cpu = frames_to_patches(frames, dev)[0].cpu(), frames_to_patches(frames)[0]
    samples = _samples(path, [0, 3, 40, 2])
    cfg = dict(lr=1e-4, mixed_precision="bf16", activation_checkpointing=True, max_tokens_per_micro_batch=120)
    torch.manual_seed(0)
    eager = FSDPLearner(path, LearnerConfig(**cfg), AlgoConfig(kl_coef=0.0), device=dev)
    compiled = FSDPLearner(path, LearnerConfig(**cfg, compile=True), AlgoConfig(kl_coef=0.0), device=dev)
    lp = [np.concatenate(m.logprobs(samples)) for m in (eager, compiled)]
    g = [m.policy_update(samples)["grad_norm"] for m in (eager, compiled)]
    q.put((rank, {"patch_diff": float((on_gpu - on_cpu).abs().max()), "lp_diff": float(np.abs(lp[0] - lp[1]).mean()),
                  "grads": g}))


def test_compiled_learner_and_device_patches_match_on_cuda_gpu(tmp_path):
    from tests.test_gpu_learner_options import _spawn
    from vital_ray.config import ModelConfig
    from vital_ray.models import ensure_model_folder

    path = ensure_model_folder(ModelConfig(tiny_hidden=256, cache_dir=str(tmp_path)))
    r = _spawn(1, path, _compiled, timeout=400)[0]
    assert r["patch_diff"] < 1e-5  # pixels normalised on the GPU = on the host
    assert r["lp_diff"] < 0.02  # bf16 both ways; fused kernels round differently, nothing more
    assert abs(r["grads"][0] - r["grads"][1]) <= 0.05 * r["grads"][0]
