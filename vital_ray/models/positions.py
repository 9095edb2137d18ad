"""The one mRoPE position rule used by rollout and learner alike.

transformers >= 5.17 starts the text after a video at `pos + max(h, w)/merge`, vLLM (and the original Qwen2-VL
code) at `max(all positions) + 1`; they disagree after long clips (docs/engineering-notes.md §2). We compute
positions here, with the reference rule, and pass them explicitly to every forward, so rollout log-probs and
learner log-probs come from the same positions whatever engine runs the rollout.
"""

from __future__ import annotations

import numpy as np
import torch

VIDEO_TYPE = 2


def mm_token_type_ids(input_ids: torch.Tensor, video_token_id: int, image_token_id: int) -> torch.Tensor:
    """0 text, 1 image, 2 video (what transformers' get_rope_index expects)."""
    out = torch.zeros_like(input_ids, dtype=torch.int32)
    out[input_ids == image_token_id] = 1
    out[input_ids == video_token_id] = VIDEO_TYPE
    return out


def mrope_positions(input_ids: torch.Tensor, video_grids: list[list[int]], second_per_grid: list[float],
                    video_token_id: int, tokens_per_second: float, merge: int = 2) -> torch.Tensor:
    """(L,) token ids -> (3, L) positions. Each run of video tokens consumes the next grid [t, h, w]."""
    ids = input_ids.tolist()
    n = len(ids)
    pos = torch.empty(3, n, dtype=torch.long)
    st, i, v = 0, 0, 0
    while i < n:
        if ids[i] != video_token_id:
            j = i
            while j < n and ids[j] != video_token_id:
                j += 1
            pos[:, i:j] = torch.arange(st, st + j - i).expand(3, -1)
            st += j - i
            i = j
            continue
        if v >= len(video_grids):
            raise ValueError(f"video token run at {i} has no matching grid ({len(video_grids)} grids given)")
        t, h, w = video_grids[v]
        h, w = h // merge, w // merge
        count = t * h * w
        if ids[i:i + count] != [video_token_id] * count or (i + count < n and ids[i + count] == video_token_id):
            raise ValueError(f"video {v}: expected a run of exactly {count} video tokens at position {i}")
        # second_per_grid is rounded to float32 first: vLLM's processor hands it over as a float32 tensor, and
        # every engine must floor the same product (docs/engineering-notes.md §2)
        t_factor = float(np.float32(second_per_grid[v])) * tokens_per_second
        t_idx = torch.floor(torch.arange(t, dtype=torch.float64) * t_factor).long()
        grid = torch.stack(torch.meshgrid(t_idx, torch.arange(h), torch.arange(w), indexing="ij")).reshape(3, -1)
        pos[:, i:i + count] = grid + st
        st = int(pos[:, i:i + count].max()) + 1
        i += count
        v += 1
    if v != len(video_grids):
        raise ValueError(f"{len(video_grids)} grids given but {v} video token runs found")
    return pos
