"""The pools on a real local Ray cluster: rollout, tools, rewards, FSDP2 learner (gloo), weight sync."""

import numpy as np
import pytest
import ray
import torch
from transformers import AutoConfig

from actors.learner import LearnerPool
from pipelines.dgrpo import assign_advantages
from pipelines.session import RLSession
from vital_ray.batch import sample_from_trajectory
from vital_ray.config import DGRPOJobConfig, load_config
from vital_ray.models.inputs import SeqInput, VideoInput, collate
from vital_ray.rollout.engine import SamplingParams

pytestmark = pytest.mark.ray

OVERRIDES = ["rollout.group_size=2", "rollout.max_tokens_per_turn=12", "rollout.max_total_tokens=200",
             "rollout.num_cpus_per_worker=1", "learner.num_cpus_per_worker=1", "learner.lr=1e-2",
             "learner.micro_batch_size=4", "view.max_frames=4", "tool.max_frames=4", "tool.max_pixels=3136"]


@pytest.fixture(scope="module")
def rl(ray_local, synthetic, tiny_model_path):
    cfg = load_config(DGRPOJobConfig, None, OVERRIDES)
    session = RLSession(cfg, tiny_model_path)
    learner = LearnerPool(tiny_model_path, cfg.learner, cfg.algo, cfg.model)
    yield cfg, session, learner, synthetic[0]
    session.shutdown()
    learner.shutdown()


def _weights(session):
    w = session.gen_pool.workers[0]
    return ray.get(w.weights_checksum.remote())


def test_learner_logprobs_match_rollout_logprobs(rl):
    cfg, session, learner, records = rl
    trajs, _ = session.rollout(records[:2])
    samples = [sample_from_trajectory(t) for t in trajs]
    learner_lp = learner.logprobs(samples)
    for t, lp in zip(trajs, learner_lp):
        rollout_lp = np.asarray(t.logprobs)[np.asarray(t.loss_mask) == 1]
        assert len(rollout_lp) == len(lp) == t.gen_tokens > 0
        assert np.abs(rollout_lp - lp).max() < 2e-3, np.abs(rollout_lp - lp).max()


def test_tool_trajectory_has_right_mask_and_multimodal_tensors(rl):
    cfg, session, learner, records = rl
    tg = next(r for r in records if r.data_source == "synthetic/tg")
    (t,) = session.teacher_trajectories([tg])
    assert t.tool_ok == 0 and len(t.videos) == 2 and t.turns == 2  # global view + the clip
    mask = np.asarray(t.loss_mask)
    # prompt 0s, turn-1 1s, tool turn 0s, turn-2 1s: exactly two runs of 1s
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask, [0]])))
    assert len(edges) == 4 and edges[0] == t.prompt_len
    tool_ids = t.token_ids[edges[1]:edges[2]]
    tool_text = session.codec.decode(tool_ids)
    assert tool_text.startswith("<|im_end|>\n<|im_start|>tool\n<|vision_start|>")
    assert "Video clip from" in tool_text and tool_text.endswith("<|im_start|>assistant\n")
    video_tok = session.codec.video_pad
    assert sum(v.num_tokens for v in t.videos) == t.token_ids.count(video_tok)
    assert all(m == 0 for tok, m in zip(t.token_ids, t.loss_mask) if tok == video_tok)
    frames = [VideoInput(ray.get(v.frames), v.second_per_grid) for v in t.videos]
    batch = collate([SeqInput(t.token_ids, frames)], AutoConfig.from_pretrained(session.model_path), 0, left_pad=False)
    assert batch["video_grid_thw"].shape == (2, 3)
    assert batch["pixel_values_videos"].shape[0] == int(batch["video_grid_thw"].prod(-1).sum())
    clip_pos = batch["position_ids"][0, 0, edges[1]:edges[2]]
    assert int(clip_pos.min()) > int(batch["position_ids"][:, 0, :edges[1]].max())  # positions keep increasing


def test_one_iteration_changes_weights_and_rollout_uses_them(rl):
    cfg, session, learner, records = rl
    before = _weights(session)
    probe = records[:1]
    greedy = SamplingParams(temperature=0.0)
    (probe_before,), _ = session.rollout(probe, 1, greedy)
    trajs, _ = session.rollout(records[:2])
    session.score(trajs)
    for i, t in enumerate(trajs):  # scripted judge: guarantees a non-zero learning signal from random weights
        t.reward = float(i % 2)
    assign_advantages(trajs, cfg.algo)
    metrics = learner.policy_update([sample_from_trajectory(t) for t in trajs])
    assert metrics["tokens"] > 0 and metrics["grad_norm"] > 0
    sync = session.sync_weights(learner)
    after = _weights(session)
    assert sync["sync/mb"] > 1 and session.weights_version >= 1
    changed = [k for k in before if abs(before[k] - after[k]) > 1e-6]
    assert changed, "the rollout pool still holds the old weights"
    assert not any("visual" in k for k in changed)  # the vision tower is frozen in RL
    entries, refs, _ = learner.push_weights()
    from vital_ray.training.weights import from_buckets
    learner_state = from_buckets(entries, ray.get(refs))
    for k in changed[:20]:
        assert float(learner_state[k].double().sum()) == pytest.approx(after[k], rel=1e-6, abs=1e-6)
    (probe_after,), _ = session.rollout(probe, 1, greedy)
    lp_before = np.asarray(probe_before.logprobs)[np.asarray(probe_before.loss_mask) == 1]
    lp_after = np.asarray(probe_after.logprobs)[np.asarray(probe_after.loss_mask) == 1]
    # the rollout now samples from the updated policy: same prompt, different token probabilities
    assert probe_after.token_ids != probe_before.token_ids or np.abs(lp_after - lp_before).max() > 1e-4
