"""The vLLM backend's pure parts, without vLLM or a GPU: request -> vLLM prompt (clips collapsed, uuids carrying
second_per_grid), the shared mRoPE rule in vLLM's calling convention (equal to the learner's positions),
sampling/stop/log-prob mapping, the vLLM model folder and the weight names pushed to `load_weights`.
vLLM's multi-modal feature objects are faked (`_mock_vllm`); the real engine is tested in test_vllm_gpu.py."""

import json
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vital_ray.models.inputs import SeqInput, VideoInput, collate
from vital_ray.rollout.engine import GenRequest, SamplingParams
from vital_ray.rollout.vllm_engine import (collapse_video_runs, iter_buckets, prepare_vllm_folder, sampled_logprobs,
                                           sampling_kwargs, spg_from_identifier, stop_reason, to_vllm_prompt,
                                           video_uuid, vllm_mrope_positions)

VID = 151656


def _clip(t, side=56, seed=0, fps=2.0):
    frames = np.random.default_rng(seed).integers(0, 255, (t, side, side, 3), dtype=np.uint8)
    return VideoInput(frames, 2.0 / fps)


def _ids(videos, text=(11, 12, 13)):
    """text, clip, text, clip, ... with each clip's expanded run of video tokens."""
    ids = list(text)
    for v in videos:
        t, h, w = v.grid
        ids += [151652] + [VID] * (t * h * w // 4) + [151653] + list(text)
    return ids


@pytest.fixture(scope="module")
def config(tiny_model_path):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(tiny_model_path)


def test_prompt_collapses_each_clip_run_and_keeps_text():
    vids = [_clip(4), _clip(16, side=84, seed=1, fps=16 / 600)]
    ids = _ids(vids)
    p = to_vllm_prompt(GenRequest("k", ids, vids, 8), VID)
    assert p["prompt_token_ids"].count(VID) == 2
    assert [t for t in p["prompt_token_ids"] if t != VID] == [t for t in ids if t != VID]
    assert [f.shape for f in p["multi_modal_data"]["video"]] == [(4, 56, 56, 3), (16, 84, 84, 3)]
    uuids = p["multi_modal_uuids"]["video"]
    assert [spg_from_identifier(u) for u in uuids] == [1.0, vids[1].second_per_grid]
    assert video_uuid(_clip(4)) == uuids[0]  # content-addressed: same frames, same cache key
    assert video_uuid(VideoInput(vids[0].frames, 0.5)) != uuids[0]


def test_clip_digest_is_computed_once_per_array_and_forgotten_with_it():
    import gc

    from vital_ray.rollout import vllm_engine

    clip = _clip(4)
    first = video_uuid(clip)
    key = id(clip.frames)
    assert key in vllm_engine._DIGESTS
    vllm_engine._DIGESTS[key] = "0" * 16  # a memo hit does not hash again
    assert video_uuid(clip).startswith("vrv-" + "0" * 16)
    other = VideoInput(clip.frames.copy(), clip.second_per_grid)  # same content, another array: hashed, same key
    assert video_uuid(other) == first
    del clip
    gc.collect()
    assert key not in vllm_engine._DIGESTS  # an id reused by a later array cannot return a stale digest


def test_prompt_rejects_runs_that_do_not_match_the_clips():
    vids = [_clip(4)]
    ids = _ids(vids)
    with pytest.raises(ValueError, match="grid"):
        collapse_video_runs(ids[:-5] + [VID] + ids[-5:], vids, VID)  # run split in two
    with pytest.raises(ValueError, match="needs 8"):
        collapse_video_runs([1, VID, VID, 2], vids, VID)
    with pytest.raises(ValueError, match="2 clips given"):
        collapse_video_runs(ids, vids + vids, VID)


def _features(ids, vids, identifiers):
    """What vLLM hands get_mrope_input_positions: one spec per clip with its offset in the expanded prompt and
    the processor's outputs (here its no-metadata spg, 2/24, which is wrong for our clips)."""
    feats, i = [], 0
    for v, ident in zip(vids, identifiers):
        i = ids.index(VID, i)
        data = {"video_grid_thw": SimpleNamespace(data=torch.tensor(v.grid)),
                "second_per_grid_ts": SimpleNamespace(data=torch.tensor(2 / 24, dtype=torch.float32))}
        feats.append(SimpleNamespace(modality="video", identifier=ident, mm_position=SimpleNamespace(offset=i),
                                     data=data))
        i += v.grid[0] * v.grid[1] * v.grid[2] // 4
    return feats[::-1]  # any order: sorted by offset inside


def test_vllm_positions_equal_learner_positions_after_long_clip_mock_vllm(config):
    vids = [_clip(4), _clip(16, side=84, seed=1, fps=16 / 600)]  # 16 frames over 600 s: HF's own rule differs
    ids = _ids(vids)
    learner = collate([SeqInput(ids, vids)], config, 0, left_pad=False)["position_ids"][:, 0]
    pos, delta = vllm_mrope_positions(config, ids, _features(ids, vids, [video_uuid(v) for v in vids]))
    assert torch.equal(pos, learner)
    assert int(learner.max()) > len(ids)  # the long clip really stretches time
    # decode: vLLM continues at len + delta + k; the learner scores generated tokens at the same positions
    gen = [21, 22, 23]
    full = collate([SeqInput(ids + gen, vids)], config, 0, left_pad=False)["position_ids"][:, 0]
    assert torch.equal(full[:, len(ids):], (torch.arange(len(ids), len(ids) + 3) + delta).expand(3, -1))
    # without our uuid vLLM would use the processor's spg: different positions (why the uuid carries it)
    wrong, _ = vllm_mrope_positions(config, ids, _features(ids, vids, ["x", "y"]))
    assert not torch.equal(wrong, learner)


def test_spg_is_rounded_like_the_processor_mock_vllm(config):
    """spg = 2/fps as a python float (rollout) or as float32 (vLLM's processor) gives the same positions."""
    fps = 3.0
    v = _clip(12, fps=fps)
    ids = _ids([v])
    a = collate([SeqInput(ids, [v])], config, 0, left_pad=False)["position_ids"][:, 0]
    v32 = VideoInput(v.frames, float(np.float32(2 / fps)))
    b = collate([SeqInput(ids, [v32])], config, 0, left_pad=False)["position_ids"][:, 0]
    assert torch.equal(a, b)


def test_sampling_suppresses_vision_tokens_and_stops_on_tool_calls():
    kw = sampling_kwargs(SamplingParams(temperature=0.7, top_p=0.9, seed=3), 32, [151652, VID], [151658, 151645])
    assert kw["logprobs"] == 0 and kw["max_tokens"] == 32 and kw["seed"] == 3
    assert set(kw["logit_bias"]) == {151652, VID} and max(kw["logit_bias"].values()) <= -1e4
    assert kw["stop_token_ids"] == [151658, 151645] and kw["stop"] == ["</answer>"]
    assert kw["include_stop_str_in_output"] and not kw["skip_special_tokens"]
    fixed = sampling_kwargs(SamplingParams(ignore_eos=True), 8, [], [151658])
    assert fixed["ignore_eos"] and fixed["stop_token_ids"] == [] and fixed["stop"] == []


def test_stop_reasons_and_sampled_logprobs():
    assert stop_reason("stop", 151658, 151658) == "tool_call"
    assert stop_reason("stop", "</answer>", 151658) == "answer"
    assert stop_reason("stop", 151645, 151658) == "eos"
    assert stop_reason("stop", None, 151658) == "eos"
    assert stop_reason("length", None, 151658) == "length"
    steps = [{5: SimpleNamespace(logprob=-0.5)}, {7: SimpleNamespace(logprob=-1.25), 9: SimpleNamespace(logprob=-3)}]
    assert sampled_logprobs([5, 7], steps) == [-0.5, -1.25]
    with pytest.raises(RuntimeError, match="logprobs"):
        sampled_logprobs([5], None)


def test_vllm_folder_names_transformers_video_processor(tiny_model_path, tmp_path):
    from transformers import AutoTokenizer

    src = tmp_path / "m"
    shutil.copytree(tiny_model_path, src)
    before = (src / "processor_config.json").read_text()
    out = prepare_vllm_folder(str(src))
    proc = json.loads(open(os.path.join(out, "processor_config.json")).read())
    assert proc["video_processor"]["video_processor_type"] == "Qwen2VLVideoProcessor"
    assert proc["video_processor"]["do_sample_frames"] is False
    assert proc["image_processor"]["image_processor_type"] == "Qwen2VLImageProcessor"
    assert (src / "processor_config.json").read_text() == before  # the model folder is left alone
    assert os.path.islink(os.path.join(out, "model.safetensors"))
    assert AutoTokenizer.from_pretrained(out).convert_tokens_to_ids("<|video_pad|>") == VID
    assert prepare_vllm_folder(str(src)) == out  # idempotent


def _pushed_and_on_disk(tiny_model_path):
    from safetensors import safe_open
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vital_ray.training.learner import FSDPLearner
    from vital_ray.training.scorer import PolicyScorer

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_path)
    this = SimpleNamespace(config=model.config)
    pushed = {n for k in PolicyScorer(model).state_dict() if (n := FSDPLearner._hf_name(this, k))}
    with safe_open(os.path.join(tiny_model_path, "model.safetensors"), "pt") as f:
        on_disk = set(f.keys())
    return model, pushed, on_disk


def test_pushed_weight_names_are_the_models_own(tiny_model_path):
    """What the learner streams to `VLLMEngine.load_weights` is the HF model's own parameter set: nothing
    missing, nothing extra, one name per checkpoint tensor."""
    model, pushed, on_disk = _pushed_and_on_disk(tiny_model_path)
    assert pushed == {n for n, _ in model.named_parameters()} and len(pushed) == len(on_disk)


def test_pushed_weight_names_land_where_vllm_loads_the_checkpoint_needs_vllm(tiny_model_path):
    """Through vLLM's own Qwen2.5-VL name mapper, the pushed (transformers 5) names and the checkpoint's names
    reach the same vLLM parameters."""
    pytest.importorskip("vllm")
    from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VLForConditionalGeneration as VLLMQwen

    _, pushed, on_disk = _pushed_and_on_disk(tiny_model_path)

    def mapped(names):
        return {n for n, _ in VLLMQwen.hf_to_vllm_mapper.apply((n, None) for n in names)}

    assert mapped(pushed) == mapped(on_disk) and len(mapped(pushed)) == len(pushed)


def test_iter_buckets_bound_each_load_call():
    named = {f"w{i}": torch.zeros(2**18) for i in range(5)}  # 1 MiB each
    buckets = list(iter_buckets(named, 2))
    assert [len(b) for b in buckets] == [2, 2, 1]
    assert [n for b in buckets for n, _ in b] == list(named)
