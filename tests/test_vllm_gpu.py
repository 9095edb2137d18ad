"""The vLLM backend for real (GPU machine with vLLM only; skipped elsewhere): multi-turn generation with a long
clip, log-probs equal to the learner's forward with the shared positions, weights replaced in place without a
restart, and sleep/wake keeping the weights."""

import numpy as np
import pytest
import torch

vllm = pytest.importorskip("vllm")
if not torch.cuda.is_available():
    pytest.skip("needs a GPU", allow_module_level=True)

from vital_ray.config import ModelConfig, RolloutConfig  # noqa: E402
from vital_ray.models.inputs import SeqInput, VideoInput, collate, model_kwargs  # noqa: E402
from vital_ray.rollout.engine import GenRequest, SamplingParams  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    from vital_ray.models import ensure_model_folder
    from vital_ray.rollout.vllm_engine import VLLMEngine

    mcfg = ModelConfig(tiny_hidden=256, tiny_layers=2, tiny_vision_depth=2,  # head_dim 64: every attention kernel
                       cache_dir=str(tmp_path_factory.mktemp("models")), dtype="bfloat16")
    path = ensure_model_folder(mcfg)
    engine = VLLMEngine(path, RolloutConfig(gpu_memory_utilization=0.25, max_model_len=8192, enforce_eager=True,
                                            sleep_mode=True), mcfg)
    hf = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=torch.bfloat16).cuda().eval()
    return engine, hf, AutoTokenizer.from_pretrained(path)


def _request(tok, frames, spg, text="Describe the video."):
    vid = tok.convert_tokens_to_ids("<|video_pad|>")
    v = VideoInput(frames, spg)
    t, h, w = v.grid
    ids = tok.encode("<|im_start|>user\n<|vision_start|>") + [vid] * (t * h * w // 4) \
        + tok.encode(f"<|vision_end|>{text}<|im_end|>\n<|im_start|>assistant\n")
    return ids, [v]


def _learner_logprobs(hf, ids, videos, n_new):
    from vital_ray.training.scorer import PolicyScorer

    batch = collate([SeqInput(ids, videos)], hf.config, 0, left_pad=False, device="cuda")
    mask = torch.zeros_like(batch["input_ids"])
    mask[0, len(ids) - n_new:] = 1
    with torch.no_grad():
        lp, _ = PolicyScorer(hf)(**model_kwargs(batch), score_mask=mask)
    return lp.float().cpu().numpy()


def test_multi_turn_long_clip_logprobs_match_learner_gpu(setup):
    engine, hf, tok = setup
    rng = np.random.default_rng(0)
    long_clip = rng.integers(0, 255, (16, 112, 112, 3), dtype=np.uint8)
    ids, videos = _request(tok, long_clip, 600 / 8)  # 16 frames over 600 s: where HF's and vLLM's rules differ
    samp = SamplingParams(temperature=1.0, seed=1, stop_strings=(), ignore_eos=True)
    r1 = engine.generate([GenRequest("a", ids, videos, 24)], samp)[0]
    assert len(r1.token_ids) == 24 and len(r1.logprobs) == 24
    ids2 = ids + r1.token_ids
    lp = _learner_logprobs(hf, ids2, videos, 24)
    assert np.abs(lp - np.asarray(r1.logprobs)).mean() < 0.03, (lp[:5], r1.logprobs[:5])
    # second turn: a tool clip appended after generated text
    clip = rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8)
    more, more_v = _request(tok, clip, 1.0, "Clip from 10 to 12 seconds.")
    ids3 = ids2 + more
    r2 = engine.generate([GenRequest("a", ids3, videos + more_v, 16)], samp)[0]
    lp2 = _learner_logprobs(hf, ids3 + r2.token_ids, videos + more_v, 16)
    assert np.abs(lp2 - np.asarray(r2.logprobs)).mean() < 0.03
    vision = {tok.convert_tokens_to_ids(t) for t in ("<|video_pad|>", "<|vision_start|>", "<|image_pad|>")}
    assert not vision & set(r1.token_ids + r2.token_ids)


def test_weights_replaced_in_place_and_kept_over_sleep_gpu(setup):
    engine, hf, tok = setup
    ids, videos = _request(tok, np.random.default_rng(1).integers(0, 255, (4, 56, 56, 3), dtype=np.uint8), 1.0)
    greedy = SamplingParams(temperature=0.0, stop_strings=(), ignore_eos=True)
    before = engine.generate([GenRequest("a", ids, videos, 12)], greedy)[0].token_ids
    state = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    v0 = engine.version
    engine.load_weights({k: (v * 0 if "embed_tokens" in k else v) for k, v in state.items()})
    zeroed = engine.generate([GenRequest("a", ids, videos, 12)], greedy)[0].token_ids
    assert zeroed != before and engine.version == v0 + 1
    engine.load_weights(state)
    assert engine.generate([GenRequest("a", ids, videos, 12)], greedy)[0].token_ids == before
    free0 = torch.cuda.mem_get_info()[0]
    engine.sleep(1)
    assert torch.cuda.mem_get_info()[0] > free0  # the engine's memory was handed back
    engine.wake_up()
    assert engine.generate([GenRequest("a", ids, videos, 12)], greedy)[0].token_ids == before
