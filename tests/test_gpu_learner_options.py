"""CUDA learner options, checked on CPU (gloo) with the tiny model: activation checkpointing, dynamic
micro-batches by token budget (ranks with different counts stay in lockstep), bf16 mixed precision, and the
GPU-to-GPU weight stream (`iter_full_weights`) equal to the full state dict."""

import shutil

import numpy as np
import pytest
import torch

from tests.spawn import spawn_ranks

from vital_ray.batch import TrainSample, pad_micro_batches, token_budget_batches
from vital_ray.config import AlgoConfig, LearnerConfig


def _s(n, w=1.0):
    return TrainSample(np.arange(n), np.ones(n, np.int8), np.zeros(n, np.float32), [], 0.0, w)


def test_token_budget_batches_group_by_length_within_budget():
    samples = [_s(n) for n in (10, 30, 20, 50, 5, 5)]
    mbs = token_budget_batches(samples, 60)
    assert sorted(id(s) for mb in mbs for s in mb) == sorted(id(s) for s in samples)  # each sample once
    assert all(len(mb) * max(s.num_tokens for s in mb) <= 60 or len(mb) == 1 for mb in mbs)
    assert [[s.num_tokens for s in mb] for mb in mbs] == [[50], [30, 20], [10, 5, 5]]  # arrival order: 4 batches
    assert [len(mb) for mb in token_budget_batches([_s(100), _s(100)], 60)] == [1, 1]  # over budget: alone


def test_pad_micro_batches_adds_zero_weight_fillers():
    mbs = token_budget_batches([_s(10), _s(10)], 100)
    padded = pad_micro_batches(mbs, 3)
    assert len(padded) == 3 and all(mb[0].weight == 0.0 for mb in padded[1:])
    assert pad_micro_batches(padded, 2) is padded


def _samples(path, lengths):
    from transformers import AutoTokenizer

    from vital_ray.rollout.trajectory import VideoRef

    tok = AutoTokenizer.from_pretrained(path)
    frames = np.random.default_rng(0).integers(0, 255, (2, 56, 56, 3), dtype=np.uint8)
    clip = VideoRef(frames, (2, 56, 56, 3), 2.0, 0.0, 1.0)
    out = []
    for i, extra in enumerate(lengths):
        ids = tok.encode("<|im_start|>user\n<|vision_start|>") + [tok.convert_tokens_to_ids("<|video_pad|>")] * 4 \
            + tok.encode("<|vision_end|>q" + " word" * extra + "<|im_end|>\n<|im_start|>assistant\n<answer>A</answer>")
        mask = np.zeros(len(ids), np.int8)
        mask[-6:] = 1
        out.append(TrainSample(np.asarray(ids), mask, np.zeros(len(ids), np.float32), [clip], 1.0 - 0.5 * i))
    return out


def _worker(rank, world, port, path, q):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    from vital_ray.training import fsdp
    from vital_ray.training.learner import FSDPLearner

    fsdp.init_distributed(rank, world, "127.0.0.1", port, "gloo")
    algo = AlgoConfig(kl_coef=0.0)
    res = {}
    if world == 1:
        samples = _samples(path, [0, 3, 40, 2])
        base = FSDPLearner(path, LearnerConfig(lr=1e-3, micro_batch_size=2), algo)
        opt = FSDPLearner(path, LearnerConfig(lr=1e-3, activation_checkpointing=True,
                                              max_tokens_per_micro_batch=120), algo)
        res["mbs"] = len(opt._micro_batches(samples))
        vit_out = []  # the frozen ViT must stay out of the autograd graph under checkpointing
        opt.policy.model.model.visual.register_forward_hook(
            lambda m, i, o: vit_out.append(getattr(o, "pooler_output", o).requires_grad))
        lp0 = base.logprobs(samples)
        res["lp_equal"] = max(float(np.abs(a - b).max()) for a, b in zip(lp0, opt.logprobs(samples)))
        gb = base.sft_update(samples)["grad_norm"]
        go = opt.sft_update(samples)["grad_norm"]
        res["vit_in_graph"] = vit_out
        res["grad_rel"] = abs(gb - go) / gb
        state = opt.full_state()
        stream = dict(opt.iter_full_weights())
        res["stream_keys"] = sorted(stream) == sorted(state)
        res["stream_equal"] = all(torch.equal(stream[k], state[k]) for k in state)
        bf = FSDPLearner(path, LearnerConfig(lr=1e-3, mixed_precision="bf16"), algo)
        res["bf16_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(lp0, bf.logprobs(samples)))
        res["bf16_master_fp32"] = all(p.dtype == torch.float32 for p in bf.policy.parameters())
    else:  # rank 0 gets one micro-batch, rank 1 three: the fillers must keep the collectives paired
        samples = _samples(path, [0] if rank == 0 else [0, 60, 60])
        lrn = FSDPLearner(path, LearnerConfig(lr=1e-3, max_tokens_per_micro_batch=90, ppo_epochs=2), algo)
        res["mbs"] = len(lrn._micro_batches(samples))
        res["tokens"] = lrn.policy_update(samples)["tokens"]
        res["lp_len"] = len(lrn.logprobs(samples))
    q.put((rank, res))


def _kl_worker(rank, world, port, path, q):
    """With a KL reference and a frozen ViT, the ViT runs once per micro-batch (the policy's) and feeds both."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    from vital_ray.models.inputs import model_kwargs
    from vital_ray.training import fsdp
    from vital_ray.training.learner import FSDPLearner

    fsdp.init_distributed(rank, world, "127.0.0.1", port, "gloo")
    samples = _samples(path, [0, 3, 40, 2])
    cfg, algo = LearnerConfig(lr=1e-3, micro_batch_size=2, activation_checkpointing=True), AlgoConfig(kl_coef=0.1)
    shared, plain = FSDPLearner(path, cfg, algo), FSDPLearner(path, cfg, algo)
    plain.share_vision = False
    res = {"shared": shared.share_vision, "trained_vit_shares": FSDPLearner(path, cfg, algo,
                                                                            freeze_vision=False).share_vision}
    calls = {"policy": 0, "ref": 0}
    for name, mod in (("policy", shared.policy), ("ref", shared.ref)):
        mod.model.model.visual.register_forward_hook(lambda *a, n=name: calls.__setitem__(n, calls[n] + 1))
    with torch.no_grad():
        batch = shared._batch(samples[:2])
        direct, _ = shared._score(shared.ref, batch)
        batch["video_embeds"] = shared.policy(**model_kwargs(batch), video_only=True)
        via_policy, _ = shared._score(shared.ref, batch)
    res["ref_lp_diff"] = float((direct - via_policy).abs().max())
    calls.update(policy=0, ref=0)
    for _ in range(2):  # the second update has a non-zero KL (the policy moved)
        a, b = shared.policy_update(samples), plain.policy_update(samples)
    res["calls"] = dict(calls)
    res["kl"] = (a["kl"], b["kl"])
    res["grad_norm"] = (a["grad_norm"], b["grad_norm"])
    q.put((rank, res))


def test_frozen_vit_features_are_shared_with_the_kl_reference(tiny_model_path):
    r = _spawn(1, tiny_model_path, _kl_worker)[0]
    assert r["shared"] and not r["trained_vit_shares"]
    assert r["ref_lp_diff"] < 1e-5
    assert r["calls"] == {"policy": 4, "ref": 0}  # 2 updates x 2 micro-batches, all on the policy's ViT
    assert r["kl"][0] > 0 and abs(r["kl"][0] - r["kl"][1]) <= 1e-5 * r["kl"][1]
    assert abs(r["grad_norm"][0] - r["grad_norm"][1]) <= 1e-5 * r["grad_norm"][1]


def _epochs_worker(rank, world, port, path, q):
    """ppo_epochs=2 with a frozen ViT: its features are computed once per micro-batch (not for the old-log-prob
    pass and each epoch again), with the same updates."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    from vital_ray.training import fsdp
    from vital_ray.training.learner import FSDPLearner

    fsdp.init_distributed(rank, world, "127.0.0.1", port, "gloo")
    samples = _samples(path, [0, 3, 40, 2])
    cfg, algo = LearnerConfig(lr=1e-3, micro_batch_size=2, ppo_epochs=2), AlgoConfig(kl_coef=0.0)
    reuse, plain = FSDPLearner(path, cfg, algo), FSDPLearner(path, cfg, algo)
    plain.reuse_vision = False
    calls = {"reuse": 0, "plain": 0}
    for name, lrn in (("reuse", reuse), ("plain", plain)):
        lrn.policy.model.model.visual.register_forward_hook(lambda *a, n=name: calls.__setitem__(n, calls[n] + 1))
    res = {"flags": (reuse.reuse_vision, FSDPLearner(path, LearnerConfig(ppo_epochs=1), algo).reuse_vision),
           "updates": [(reuse.policy_update(samples), plain.policy_update(samples)) for _ in range(2)],
           "calls": dict(calls)}
    q.put((rank, res))


def test_ppo_epochs_compute_frozen_vit_features_once(tiny_model_path):
    r = _spawn(1, tiny_model_path, _epochs_worker)[0]
    assert r["flags"] == (True, False)
    assert r["calls"] == {"reuse": 2 * 2, "plain": 2 * (2 + 2 * 2)}  # 2 updates x 2 micro-batches (x 3 passes)
    for a, b in r["updates"]:
        for key in ("grad_norm", "pg_loss", "clip_frac"):
            if key in a:
                assert abs(a[key] - b[key]) <= 1e-5 * max(1.0, abs(b[key])), key
        assert a["tokens"] == b["tokens"]


def _compile_worker(rank, world, port, path, q):
    """learner.compile: the compiled blocks give the eager log-probs and gradients, through FSDP2 and
    activation checkpointing, over micro-batches of different lengths (dynamic shapes, no recompile storm)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    from vital_ray.training import fsdp
    from vital_ray.training.learner import FSDPLearner

    fsdp.init_distributed(rank, world, "127.0.0.1", port, "gloo")
    samples = _samples(path, [0, 3, 40, 2])
    cfg = dict(lr=1e-3, micro_batch_size=2, activation_checkpointing=True)
    eager = FSDPLearner(path, LearnerConfig(**cfg), AlgoConfig(kl_coef=0.0))
    compiled = FSDPLearner(path, LearnerConfig(**cfg, compile=True), AlgoConfig(kl_coef=0.0))
    blocks = fsdp._blocks(compiled.policy)
    res = {"compiled": [hasattr(b.forward, "_torchdynamo_orig_callable") for b in blocks],
           "eager_plain": not any(hasattr(b.forward, "_torchdynamo_orig_callable")
                                  for b in fsdp._blocks(eager.policy))}
    res["grad"] = [(eager.policy_update(samples)["grad_norm"], compiled.policy_update(samples)["grad_norm"])
                   for _ in range(2)]
    res["lp_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(eager.logprobs(samples),
                                                                     compiled.logprobs(samples)))
    q.put((rank, res))


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_blocks_match_eager(tiny_model_path):
    r = _spawn(1, tiny_model_path, _compile_worker, timeout=400)[0]
    assert r["compiled"] and all(r["compiled"]) and r["eager_plain"]  # every decoder layer and ViT block
    for g_eager, g_compiled in r["grad"]:
        assert abs(g_eager - g_compiled) <= 1e-4 * g_eager
    assert r["lp_diff"] < 1e-4


def _spawn(world, path, target=None, timeout=240):
    """Run `target(rank, world, port, path, queue)` in `world` spawned processes; -> {rank: result}."""
    from vital_ray.training.fsdp import free_port

    return spawn_ranks(target or _worker, world, (world, free_port(), path), timeout=timeout)


def test_checkpointing_token_budget_bf16_and_weight_stream(tiny_model_path):
    r = _spawn(1, tiny_model_path)[0]
    assert r["mbs"] == 2  # by length: the long sample alone, the 3 short ones together within 120 tokens
    assert r["lp_equal"] < 1e-5  # checkpointing and regrouping change nothing numerically
    assert r["grad_rel"] < 1e-4
    assert r["vit_in_graph"] and not any(r["vit_in_graph"])  # frozen ViT: forward only, never recomputed
    assert r["stream_keys"] and r["stream_equal"]
    assert r["bf16_master_fp32"] and 0 < r["bf16_diff"] < 0.1  # bf16 compute: close, not identical


def test_token_budget_ranks_with_different_counts_stay_in_lockstep(tiny_model_path):
    r = _spawn(2, tiny_model_path)
    assert r[0]["mbs"] == r[1]["mbs"] == 3
    assert r[0]["tokens"] == 6 * 2 and r[1]["tokens"] == 18 * 2  # fillers count no tokens (2 epochs)
    assert r[0]["lp_len"] == 1 and r[1]["lp_len"] == 3


def test_gpu_config_fields_are_validated_at_start_up():
    from vital_ray.config import ConfigError, DGRPOJobConfig, load_config

    cfg = load_config(DGRPOJobConfig, None, ["learner.sync_method=nccl", "learner.mixed_precision=bf16",
                                             "rollout.backend=vllm", "rollout.sleep_mode=true"])
    assert cfg.learner.sync_method == "nccl" and cfg.rollout.sleep_mode
    for bad, key in (("learner.sync_method=pigeon", "learner.sync_method"),
                     ("learner.mixed_precision=fp8", "learner.mixed_precision"),
                     ("rollout.gpu_memory_utilization=0", "rollout.gpu_memory_utilization"),
                     ("rollout.load_format=magic", "rollout.load_format")):
        with pytest.raises(ConfigError, match=key):
            load_config(DGRPOJobConfig, None, [bad])
