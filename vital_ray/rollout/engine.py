"""The rollout backend interface (token-in/token-out) and its transformers implementation.

`generate` takes full token sequences (prompt + earlier turns + tool turns) with their clips and returns the new
tokens of one assistant turn with the log-probs of the raw policy (what the learner recomputes). The vLLM backend
(GPU extra) implements the same interface.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from vital_ray.models.inputs import SeqInput, VideoInput, collate, model_kwargs
from vital_ray.models.kit import load_model_bundle


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop_strings: tuple[str, ...] = ("</answer>",)
    seed: int | None = None
    ignore_eos: bool = False  # fixed-length turns (benchmarks with random weights): only max_new_tokens stops


@dataclass
class GenRequest:
    key: str
    token_ids: list[int]
    videos: list[VideoInput]
    max_new_tokens: int


@dataclass
class GenResult:
    key: str
    token_ids: list[int]
    logprobs: list[float]
    text: str
    stop_reason: str  # tool_call | answer | eos | length
    stats: dict = field(default_factory=dict)


class RolloutEngine:
    """Interface every backend implements."""

    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        raise NotImplementedError

    def load_weights(self, named_arrays: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def logits_processors(sampling: SamplingParams, suppressed: list[int]):
    """transformers' processors in vLLM's order: placeholder suppression, repetition penalty over prompt and output
    tokens (vLLM's meaning), then temperature and top-p for sampling (greedy takes the argmax after the penalty)."""
    from transformers import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor, SuppressTokensLogitsProcessor,
                              TemperatureLogitsWarper, TopPLogitsWarper)

    procs = LogitsProcessorList([SuppressTokensLogitsProcessor(suppressed)])
    if sampling.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty))
    if sampling.temperature > 0:
        procs.append(TemperatureLogitsWarper(sampling.temperature))
        if sampling.top_p < 1.0:
            procs.append(TopPLogitsWarper(sampling.top_p))
    return procs


class HFEngine(RolloutEngine):
    def __init__(self, model_path: str, dtype: str = "float32", device: str = "cpu"):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.device = torch.device(device)
        self.bundle = load_model_bundle(model_path, dtype, self.device)
        self.model = self.bundle.model
        self.tok = self.bundle.tokenizer
        self.pad_id = self.tok.pad_token_id
        self.eos_id = self.tok.convert_tokens_to_ids("<|im_end|>")
        self.tool_end_id = self.tok.convert_tokens_to_ids("</tool_call>")
        self.suppressed = self.bundle.suppressed_ids
        fwd = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in fwd else "past_key_values"

    @torch.no_grad()
    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        t0 = time.perf_counter()
        gen = torch.Generator(device=self.device)
        gen.manual_seed(sampling.seed if sampling.seed is not None else int(time.time_ns() % 2**31))
        seqs = [SeqInput(r.token_ids, r.videos) for r in requests]
        batch = collate(seqs, self.model.config, self.pad_id, left_pad=True, device=self.device)
        attn = batch["attention_mask"]
        next_pos = batch["position_ids"].amax(dim=(0, 2)) + 1  # (B,) text continues after the max position
        out = self.model(**model_kwargs(batch), use_cache=True, logits_to_keep=1)
        cache = _cache_of(out)
        B = len(requests)
        limits = torch.tensor([r.max_new_tokens for r in requests], device=self.device)
        new_ids: list[list[int]] = [[] for _ in range(B)]
        new_lp: list[list[float]] = [[] for _ in range(B)]
        reasons = [""] * B
        active = torch.ones(B, dtype=torch.bool, device=self.device)
        procs = logits_processors(sampling, self.suppressed)
        # the tokens seen so far, per row, for the penalty: left padding becomes a suppressed id (its logit is
        # -inf, which a penalty leaves -inf), so padding counts as no token
        seen = batch["input_ids"].masked_fill(attn == 0, self.suppressed[0])
        prefill_s = time.perf_counter() - t0
        for step in range(int(limits.max())):
            logits = out.logits[:, -1].float()
            raw_logp = torch.log_softmax(logits, dim=-1)
            logits = procs(seen, logits)
            if sampling.temperature <= 0:
                tok = logits.argmax(-1)
            else:
                tok = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(-1)
            lp = raw_logp.gather(-1, tok[:, None]).squeeze(-1)
            for b in torch.nonzero(active).flatten().tolist():
                t = int(tok[b])
                new_ids[b].append(t)
                new_lp[b].append(float(lp[b]))
                reason = "" if sampling.ignore_eos else self._stop_reason(t, new_ids[b], sampling.stop_strings)
                if not reason and len(new_ids[b]) >= int(limits[b]):
                    reason = "length"
                if reason:
                    reasons[b] = reason
                    active[b] = False
            if not bool(active.any()):
                break
            seen = torch.cat([seen, torch.where(active, tok, self.suppressed[0])[:, None]], dim=1)
            tok = torch.where(active, tok, torch.full_like(tok, self.pad_id))
            attn = torch.cat([attn, active.long()[:, None]], dim=1)
            pos = next_pos.view(1, B, 1).expand(3, B, 1)
            next_pos = next_pos + 1
            out = self.model(input_ids=tok[:, None], attention_mask=attn, position_ids=pos,
                             use_cache=True, **{self._cache_kw: cache})
            cache = _cache_of(out)
        total = time.perf_counter() - t0
        n_new = sum(len(x) for x in new_ids)
        stats = {"prefill_s": prefill_s, "generate_s": total, "new_tokens": n_new,
                 "prompt_tokens": int(batch["attention_mask"].sum())}
        return [GenResult(r.key, new_ids[b], new_lp[b], self.tok.decode(new_ids[b]), reasons[b], stats)
                for b, r in enumerate(requests)]

    def _stop_reason(self, t: int, ids: list[int], stop_strings) -> str:
        if t == self.tool_end_id:
            return "tool_call"
        if t == self.eos_id:
            return "eos"
        if stop_strings:
            tail = self.tok.decode(ids[-8:])
            if any(tail.endswith(s) for s in stop_strings):
                return "answer"
        return ""

    @torch.no_grad()
    def load_weights(self, named_arrays: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        params.update(dict(self.model.named_buffers()))
        missing = [k for k in named_arrays if k not in params]
        if missing:
            raise KeyError(f"weights not in the rollout model: {missing[:5]}")
        for name, arr in named_arrays.items():
            p = params[name]
            src = arr if isinstance(arr, torch.Tensor) else torch.from_numpy(np.asarray(arr))
            if src.shape != p.shape:
                raise ValueError(f"{name}: shape {tuple(src.shape)} != {tuple(p.shape)}")
            p.copy_(src.to(p.dtype))
