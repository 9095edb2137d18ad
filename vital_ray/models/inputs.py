"""Collate token sequences + their video clips into one Qwen2.5-VL forward batch.

Rollout (left padding, generation) and learner (right padding, scoring) both build inputs here, with positions
from `positions.mrope_positions`, so their log-probs agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vital_ray.models import vision
from vital_ray.models.positions import mrope_positions


@dataclass
class VideoInput:
    frames: np.ndarray  # (T,H,W,3) uint8, sides multiples of 28
    second_per_grid: float

    @property
    def grid(self) -> list[int]:
        t, h, w, _ = self.frames.shape
        return vision.grid_for_frames(t, h, w)


@dataclass
class SeqInput:
    token_ids: list[int]
    videos: list[VideoInput] = field(default_factory=list)


def collate(seqs: list[SeqInput], config, pad_id: int, left_pad: bool, device="cpu") -> dict:
    """-> input_ids, attention_mask, position_ids (3,B,L), pixel_values_videos, video_grid_thw, offsets.

    `offsets[b]` is where sequence b's first token sits in the padded row (non-zero only with left padding).
    """
    vid_tok = config.video_token_id
    tps = config.vision_config.tokens_per_second
    L = max(len(s.token_ids) for s in seqs)
    B = len(seqs)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.zeros((B, L), dtype=torch.long)
    pos = torch.zeros((3, B, L), dtype=torch.long)
    rows, grids, offsets = [], [], []
    for b, s in enumerate(seqs):
        n = len(s.token_ids)
        off = L - n if left_pad else 0
        ids = torch.tensor(s.token_ids, dtype=torch.long)
        input_ids[b, off:off + n] = ids
        attn[b, off:off + n] = 1
        sg = [v.grid for v in s.videos]
        pos[:, b, off:off + n] = mrope_positions(ids, sg, [v.second_per_grid for v in s.videos], vid_tok, tps)
        for v in s.videos:
            patches, _ = vision.frames_to_patches(v.frames, device)
            rows.append(patches)
            grids.append(v.grid)
        offsets.append(off)
    out = {"input_ids": input_ids.to(device), "attention_mask": attn.to(device), "position_ids": pos.to(device),
           "offsets": offsets}
    if rows:
        out["pixel_values_videos"] = torch.cat(rows)
        out["video_grid_thw"] = torch.tensor(grids, dtype=torch.long, device=device)
    return out


def model_kwargs(batch: dict) -> dict:
    keys = ("input_ids", "attention_mask", "position_ids", "pixel_values_videos", "video_grid_thw", "video_embeds")
    return {k: batch[k] for k in keys if k in batch}
