"""Log-probs of chosen tokens without materialising (B, L, vocab) logits.

`PolicyScorer` wraps the HF model so that FSDP2 can shard it as the root module: the LM head runs only on the
positions that predict a loss-masked token (the vocabulary is 151k wide).
"""

from __future__ import annotations

import torch
from torch import nn


class PolicyScorer(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, score_mask, pixel_values_videos=None,
                video_grid_thw=None, with_entropy: bool = False):
        """score_mask (B, L) marks tokens to score; returns their log-probs flattened in row-major order."""
        out = self.model.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               pixel_values_videos=pixel_values_videos, video_grid_thw=video_grid_thw,
                               use_cache=False)
        hidden = out.last_hidden_state[:, :-1][score_mask[:, 1:].bool()]  # position t-1 predicts token t
        labels = input_ids[:, 1:][score_mask[:, 1:].bool()]
        logits = self.model.lm_head(hidden).float()
        lse = torch.logsumexp(logits, dim=-1)
        # a subtraction, not a gather view: FSDP2 hooks must see a fresh tensor, and no (N, vocab) log-softmax
        logp = logits.gather(-1, labels[:, None])[:, 0] - lse
        if not with_entropy:
            return logp, None
        probs = torch.softmax(logits, dim=-1)
        entropy = lse - (probs * logits).sum(-1)
        return logp, entropy
