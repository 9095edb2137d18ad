"""Log-probs of chosen tokens without materialising (B, L, vocab) logits.

`PolicyScorer` wraps the HF model so that FSDP2 can shard it as the root module: the LM head runs only on the
positions that predict a loss-masked token (the vocabulary is 151k wide).
"""

from __future__ import annotations

import torch
from torch import nn

from vital_ray.algorithms.losses import entropy_from_logits, token_logprobs


class PolicyScorer(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, score_mask=None, pixel_values_videos=None,
                video_grid_thw=None, video_embeds=None, with_entropy: bool = False, video_only: bool = False):
        """score_mask (B, L) marks tokens to score; returns their log-probs flattened in row-major order.

        `video_only`: return the batch's merged ViT features instead (one forward through the root, so FSDP
        gathers what it needs); `video_embeds`: use such features instead of running this model's ViT."""
        inner = self.model.model
        if video_only:
            out = inner.visual(pixel_values_videos.type(inner.visual.dtype), grid_thw=video_grid_thw)
            return getattr(out, "pooler_output", out)  # transformers 5.x: BaseModelOutputWithPooling
        kw = dict(attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        if video_embeds is not None:
            embeds = inner.get_input_embeddings()(input_ids)
            where = (input_ids == self.model.config.video_token_id).unsqueeze(-1)
            kw["inputs_embeds"] = embeds.masked_scatter(where, video_embeds.to(embeds.dtype))
        else:
            kw.update(input_ids=input_ids, pixel_values_videos=pixel_values_videos, video_grid_thw=video_grid_thw)
        out = inner(**kw)
        hidden = out.last_hidden_state[:, :-1][score_mask[:, 1:].bool()]  # position t-1 predicts token t
        labels = input_ids[:, 1:][score_mask[:, 1:].bool()]
        logits = self.model.lm_head(hidden)
        logp = token_logprobs(logits, labels)
        return logp, (entropy_from_logits(logits) if with_entropy else None)
