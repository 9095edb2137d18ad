"""The vLLM rollout backend (extra `gpu`): the `RolloutEngine` interface on a vLLM `LLM`, token-in/token-out.

What it guarantees, and how:
- Same inputs as the learner. A request's token ids already hold each clip's expanded run of `<|video_pad|>`;
  vLLM expands placeholders itself, so each run is collapsed to one token and vLLM's expanded prompt is checked
  against ours (same length, same ids) before its output is used.
- Same positions as the learner. vLLM's own mRoPE rule is replaced (in this process: the engine core runs
  in-process) by `positions.mrope_positions`, the function the learner calls. A clip's `second_per_grid`
  travels in its multi-modal uuid, so positions use the rollout's exact value, not the one the HF processor
  derives from (absent) fps metadata.
- Same log-probs. `logprobs_mode="raw_logprobs"`: the sampled token's log-prob under the raw policy, before
  temperature / top-p / penalties, which is what the learner recomputes.
- Vision placeholders are never sampled (logit bias -inf-like on `ModelBundle.suppressed_ids`).
- Weights are loaded in place from named tensors (HF names, bucket by bucket) without restarting the engine;
  `sleep`/`wake_up` free and restore GPU memory when the engine shares its GPU with the learner.

Everything above the `VLLMEngine` class is pure Python/torch and is tested without vLLM or a GPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import weakref
from typing import Iterable

import numpy as np
import torch

from vital_ray.models import vision
from vital_ray.models.inputs import VideoInput
from vital_ray.models.positions import mrope_positions
from vital_ray.rollout.engine import GenRequest, GenResult, RolloutEngine, SamplingParams

_UUID_RE = re.compile(r"vrv-[0-9a-f]{16}-spg(?P<spg>[0-9.eE+-]+)$")
SUPPRESS_BIAS = -1e4  # vLLM adds logit_bias before softmax; -1e4 is exp(-1e4) = 0 in fp32


# -- request -> vLLM prompt ------------------------------------------------------------------------------------

_DIGESTS: dict[int, str] = {}  # id(frames) -> digest while that array lives (a trajectory resends its clips)


def _digest(frames: np.ndarray) -> str:
    key = id(frames)
    if (d := _DIGESTS.get(key)) is None:
        flat = np.ascontiguousarray(frames)
        h = hashlib.blake2b(flat.data, digest_size=8)
        h.update(repr(flat.shape).encode())
        d = _DIGESTS[key] = h.hexdigest()
        weakref.finalize(frames, _DIGESTS.pop, key, None)  # the id may be reused once the array is gone
    return d


def video_uuid(video: VideoInput) -> str:
    """Content hash (vLLM's cache key for the clip) + the clip's second_per_grid (read back by the position rule).
    Hashing megabytes of frames per request per turn was rollout overhead, so each array is hashed once."""
    return f"vrv-{_digest(video.frames)}-spg{float(video.second_per_grid)!r}"


def spg_from_identifier(identifier: str | None) -> float | None:
    m = _UUID_RE.search(identifier or "")
    return float(m.group("spg")) if m else None


def collapse_video_runs(token_ids: list[int], videos: list[VideoInput], video_token_id: int) -> list[int]:
    """Each clip's expanded run of video tokens -> one token (vLLM re-expands it from the clip's grid).
    Run lengths must match the clips' grids, in order, or the request is malformed."""
    out: list[int] = []
    i, v, n = 0, 0, len(token_ids)
    while i < n:
        if token_ids[i] != video_token_id:
            out.append(token_ids[i])
            i += 1
            continue
        j = i
        while j < n and token_ids[j] == video_token_id:
            j += 1
        if v >= len(videos):
            raise ValueError(f"video token run at {i} has no clip ({len(videos)} clips given)")
        want = vision.num_video_tokens(videos[v].grid)
        if j - i != want:
            raise ValueError(f"clip {v}: run of {j - i} video tokens at {i}, its grid {videos[v].grid} needs {want}")
        out.append(video_token_id)
        i, v = j, v + 1
    if v != len(videos):
        raise ValueError(f"{len(videos)} clips given but {v} video token runs found")
    return out


def to_vllm_prompt(req: GenRequest, video_token_id: int) -> dict:
    """A `TokensPrompt` dict: collapsed ids, clips as (T,H,W,3) uint8 frames, uuids carrying second_per_grid."""
    prompt: dict = {"prompt_token_ids": collapse_video_runs(list(req.token_ids), req.videos, video_token_id)}
    if req.videos:
        prompt["multi_modal_data"] = {"video": [np.asarray(v.frames, dtype=np.uint8) for v in req.videos]}
        prompt["multi_modal_uuids"] = {"video": [video_uuid(v) for v in req.videos]}
    return prompt


# -- the shared position rule, in vLLM's calling convention ------------------------------------------------------

def vllm_mrope_positions(config, input_tokens: list[int], mm_features: list) -> tuple[torch.Tensor, int]:
    """vLLM's `get_mrope_input_positions(input_tokens, mm_features)` computed by `positions.mrope_positions`.

    `mm_features`: objects with `.modality`, `.identifier`, `.mm_position.offset` and `.data[...]` (vLLM's
    MultiModalFeatureSpec). Returns ((3, L) positions, delta) where delta = max + 1 - L, so that decode steps
    continue at max + 1 (what the learner sees for generated text)."""
    feats = sorted(mm_features, key=lambda f: f.mm_position.offset)
    grids, spgs = [], []
    for f in feats:
        if f.modality != "video":
            raise ValueError(f"only video inputs are supported, got {f.modality}")
        grids.append([int(x) for x in _field(f.data["video_grid_thw"]).reshape(-1).tolist()])
        spg = spg_from_identifier(getattr(f, "identifier", None)) or spg_from_identifier(getattr(f, "mm_hash", None))
        if spg is None:  # a clip that did not come through to_vllm_prompt: the processor's value
            spg = float(_field(f.data["second_per_grid_ts"]).reshape(-1)[0]) if "second_per_grid_ts" in f.data else 1.0
        spgs.append(spg)
    ids = torch.as_tensor(list(input_tokens), dtype=torch.long)
    pos = mrope_positions(ids, grids, spgs, config.video_token_id, config.vision_config.tokens_per_second,
                          config.vision_config.spatial_merge_size)
    return pos, int(pos.max()) + 1 - len(ids) if len(ids) else 0


def _field(x) -> torch.Tensor:
    x = getattr(x, "data", x)  # vLLM wraps tensors in MultiModalFieldElem
    return torch.as_tensor(x)


_RULE_INSTALLED = False


def install_position_rule() -> None:
    """Replace vLLM's Qwen2.5-VL position rule with ours (this process's engine core)."""
    global _RULE_INSTALLED
    if _RULE_INSTALLED:
        return
    from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VLForConditionalGeneration

    def get_mrope_input_positions(self, input_tokens, mm_features):
        return vllm_mrope_positions(self.config, input_tokens, mm_features)

    Qwen2_5_VLForConditionalGeneration.get_mrope_input_positions = get_mrope_input_positions
    _RULE_INSTALLED = True


# -- sampling and results ----------------------------------------------------------------------------------------

def sampling_kwargs(sampling: SamplingParams, max_new_tokens: int, suppressed_ids: list[int],
                    stop_token_ids: list[int]) -> dict:
    """Our SamplingParams -> vllm.SamplingParams kwargs."""
    kw = dict(max_tokens=int(max_new_tokens), temperature=float(sampling.temperature), top_p=float(sampling.top_p),
              repetition_penalty=float(sampling.repetition_penalty), logprobs=0, seed=sampling.seed,
              logit_bias={int(t): SUPPRESS_BIAS for t in suppressed_ids},
              stop_token_ids=list(stop_token_ids), stop=list(sampling.stop_strings),
              include_stop_str_in_output=True, skip_special_tokens=False, ignore_eos=sampling.ignore_eos)
    if sampling.ignore_eos:  # benchmarks: fixed-length turns
        kw.update(stop_token_ids=[], stop=[])
    return kw


def stop_reason(finish_reason: str | None, vllm_stop_reason, tool_end_id: int) -> str:
    """vLLM's (finish_reason, stop_reason) -> ours: tool_call | answer | eos | length."""
    if finish_reason == "length":
        return "length"
    if vllm_stop_reason == tool_end_id:
        return "tool_call"
    if isinstance(vllm_stop_reason, str):
        return "answer"
    return "eos"  # <|im_end|> (a stop token) or the model's own EOS


def sampled_logprobs(token_ids: list[int], logprobs: list[dict] | None) -> list[float]:
    """vLLM's per-step {token: Logprob} dicts -> the sampled tokens' log-probs."""
    if logprobs is None:
        raise RuntimeError("vLLM returned no logprobs; SamplingParams.logprobs must be 0")
    out = []
    for t, step in zip(token_ids, logprobs):
        lp = step[t]
        out.append(float(getattr(lp, "logprob", lp)))
    return out


# -- model folder and weights --------------------------------------------------------------------------------------

VIDEO_PROCESSOR = {  # torchvision's Qwen2VLVideoProcessor, told not to resample or resize our (28-multiple) frames
    "video_processor_type": "Qwen2VLVideoProcessor", "do_sample_frames": False, "do_resize": True,
    "size": {"shortest_edge": 28 * 28, "longest_edge": 16384 * 28 * 28},
    "patch_size": vision.PATCH, "temporal_patch_size": vision.TEMPORAL_PATCH, "merge_size": vision.MERGE,
    "image_mean": list(vision.MEAN), "image_std": list(vision.STD), "do_normalize": True, "do_rescale": True,
    "rescale_factor": 1 / 255, "do_convert_rgb": True,
}


def prepare_vllm_folder(path: str) -> str:
    """A sibling folder vLLM can load: links to the model's files, with a processor config that names
    transformers' own video processor (ours exists only for torchvision-free machines)."""
    path = path.rstrip("/")
    cfg_file = os.path.join(path, "processor_config.json")
    if not os.path.isfile(cfg_file):
        return path
    out = path + "-vllm"
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(path):
        dst = os.path.join(out, name)
        if name != "processor_config.json" and not os.path.lexists(dst):
            os.symlink(os.path.join(path, name), dst)
    with open(cfg_file) as f:
        proc = json.load(f)
    proc["video_processor"] = dict(VIDEO_PROCESSOR)
    tmp = os.path.join(out, f"processor_config.json.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(proc, f, indent=2)
    os.replace(tmp, os.path.join(out, "processor_config.json"))
    return out


def iter_buckets(named: dict[str, torch.Tensor], bucket_mb: int) -> Iterable[list[tuple[str, torch.Tensor]]]:
    """Group (name, tensor) pairs into ~bucket_mb lists: bounded temporary memory per load call."""
    limit, cur, used = max(1, bucket_mb) * 2**20, [], 0
    for name, t in named.items():
        nbytes = t.numel() * t.element_size()
        if cur and used + nbytes > limit:
            yield cur
            cur, used = [], 0
        cur.append((name, t))
        used += nbytes
    if cur:
        yield cur


class VLLMEngine(RolloutEngine):
    """vLLM `LLM` in this process (the engine core too: `VLLM_ENABLE_V1_MULTIPROCESSING=0`)."""

    def __init__(self, model_path: str, rollout, model, **overrides):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # position rule + in-place weight loads
        os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")  # flashinfer is optional; torch sampling works
        from transformers import AutoTokenizer
        from vllm import LLM

        install_position_rule()
        from vital_ray.models.kit import suppressed_token_ids

        self.tok = AutoTokenizer.from_pretrained(model_path)
        folder = prepare_vllm_folder(model_path)
        kwargs = dict(model=folder, dtype=model.dtype if model.dtype != "float32" else "bfloat16",
                      gpu_memory_utilization=rollout.gpu_memory_utilization, seed=model.seed,
                      enforce_eager=rollout.enforce_eager, enable_sleep_mode=rollout.sleep_mode,
                      max_model_len=rollout.max_model_len, logprobs_mode="raw_logprobs",
                      limit_mm_per_prompt={"video": rollout.max_videos_per_prompt, "image": 0},
                      enable_prefix_caching=True, load_format=rollout.load_format)
        kwargs.update(overrides)
        self.llm = LLM(**kwargs)
        self.config = self.llm.llm_engine.model_config.hf_config
        self.video_token_id = self.config.video_token_id
        self.eos_id = self.tok.convert_tokens_to_ids("<|im_end|>")
        self.tool_end_id = self.tok.convert_tokens_to_ids("</tool_call>")
        self.suppressed = suppressed_token_ids(self.tok, self.config.text_config.vocab_size)
        self.bucket_mb = rollout.weight_bucket_mb

    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        from vllm import SamplingParams as VSP

        t0 = time.perf_counter()
        prompts = [to_vllm_prompt(r, self.video_token_id) for r in requests]
        params = [VSP(**sampling_kwargs(sampling, r.max_new_tokens, self.suppressed,
                                        [self.tool_end_id, self.eos_id])) for r in requests]
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        total = time.perf_counter() - t0
        results, n_new, n_prompt = [], 0, 0
        for r, o in zip(requests, outs):
            if list(o.prompt_token_ids) != list(r.token_ids):  # vLLM expanded our clips differently
                raise RuntimeError(f"{r.key}: vLLM's prompt ({len(o.prompt_token_ids)} tokens) differs from the "
                                   f"request ({len(r.token_ids)} tokens); check the clips' grids")
            c = o.outputs[0]
            ids = list(c.token_ids)
            n_new += len(ids)
            n_prompt += len(r.token_ids)
            results.append(GenResult(r.key, ids, sampled_logprobs(ids, c.logprobs),
                                     self.tok.decode(ids), stop_reason(c.finish_reason, c.stop_reason, self.tool_end_id)))
        stats = {"prefill_s": 0.0, "generate_s": total, "new_tokens": n_new, "prompt_tokens": n_prompt}
        for res in results:
            res.stats = stats
        return results

    # weights ------------------------------------------------------------------------------------------------------
    def load_weights(self, named_arrays: dict[str, torch.Tensor]) -> None:
        """HF-named tensors (CPU or CUDA) -> the running model, bucket by bucket; vLLM maps the names
        (`model.language_model.*`, `model.visual.*`, `lm_head.*`) and fuses qkv / gate_up itself."""
        for bucket in iter_buckets(named_arrays, self.bucket_mb):
            self.load_bucket(bucket)
        self.finish_weight_update()

    def load_bucket(self, bucket: list[tuple[str, torch.Tensor]]) -> None:
        self.llm.apply_model(lambda m: m.load_weights(iter(bucket)))

    def finish_weight_update(self) -> None:
        self.llm.reset_prefix_cache()  # cached KV was computed with the old weights

    def sleep(self, level: int = 1) -> None:
        self.llm.sleep(level=level)

    def wake_up(self) -> None:
        self.llm.wake_up()

    @property
    def model(self):  # weights_checksum() and tests read parameters through `engine.model`
        return self.llm.apply_model(lambda m: m)[0]  # in-process engine core: the module itself
