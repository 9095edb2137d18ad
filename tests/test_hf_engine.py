"""The CPU engine's sampling: transformers' logits processors with vLLM's meaning of the repetition penalty (prompt
and output tokens), on the real tiny model."""

import pytest
import torch

from vital_ray.rollout.engine import GenRequest, HFEngine, SamplingParams, logits_processors


def test_penalty_counts_prompt_tokens_and_padding_counts_none():
    suppressed = [0]
    logits = torch.tensor([[0.0, 2.0, 1.5, -1.0, 0.5]])
    seen = torch.tensor([[0, 0, 1, 3]])  # two left pads (a suppressed id), then prompt tokens 1 and 3
    out = logits_processors(SamplingParams(temperature=0, repetition_penalty=2.0), suppressed)(seen, logits.clone())
    assert out[0].tolist() == [float("-inf"), 1.0, 1.5, -2.0, 0.5]  # 2/2, untouched, -1*2
    assert int(out.argmax()) == 2  # the prompt's token 1 lost its lead
    plain = logits_processors(SamplingParams(temperature=0), suppressed)(seen, logits.clone())
    assert int(plain.argmax()) == 1


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    out = logits_processors(SamplingParams(temperature=1.0, top_p=0.75), [])(torch.zeros(1, 1, dtype=torch.long),
                                                                             logits.clone())
    assert torch.isfinite(out[0]).tolist() == [True, True, False, False]


@pytest.fixture(scope="module")
def engine(tiny_model_path):
    return HFEngine(tiny_model_path)


def test_strong_penalty_never_repeats_a_prompt_or_output_token(engine):
    prompt = engine.tok.encode("<|im_start|>user\nthe cat sat on the mat<|im_end|>\n<|im_start|>assistant\n")
    req = GenRequest("a", prompt, [], 24)
    (free,) = engine.generate([req], SamplingParams(temperature=0, ignore_eos=True))
    (res,) = engine.generate([req], SamplingParams(temperature=0, repetition_penalty=1e6, ignore_eos=True))
    assert len(res.token_ids) == 24
    assert not set(res.token_ids) & set(prompt) and len(set(res.token_ids)) == 24
    assert free.token_ids != res.token_ids
    # the log-probs are the model's own (before processors), which is what the learner recomputes
    assert all(lp <= 0 for lp in res.logprobs)
