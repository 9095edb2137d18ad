"""Turn uint8 frames into Qwen2.5-VL vision inputs in plain torch (no torchvision needed).

Frames arriving here were already resized to multiples of 28 by the video tools (smart_resize), so this is
normalise + patchify only. The rollout and the learner both call it, so they see identical pixels.
"""

from __future__ import annotations

import numpy as np
import torch

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
PATCH, TEMPORAL_PATCH, MERGE = 14, 2, 2


def frames_to_patches(frames: np.ndarray | torch.Tensor, device: str | torch.device | None = None
                      ) -> tuple[torch.Tensor, list[int]]:
    """(T,H,W,3) uint8 -> (pixel rows (t*h*w, 3*2*14*14) float32, grid [t, h, w]) in the HF layout.

    The uint8 frames move to `device` first and the arithmetic runs there: a quarter of the float bytes cross
    the bus, and a GPU learner does not spend its update normalising ~100 k patches on the host."""
    v = torch.as_tensor(_writable(frames), device=device).permute(0, 3, 1, 2).float()  # T,C,H,W
    t, c, h, w = v.shape
    if h % (PATCH * MERGE) or w % (PATCH * MERGE):
        raise ValueError(f"frame size {h}x{w} is not a multiple of {PATCH * MERGE}; resize with smart_resize")
    if pad := -t % TEMPORAL_PATCH:
        v = torch.cat((v, v[-1:].expand(pad, -1, -1, -1)))
        t += pad
    mean = torch.tensor(MEAN, device=v.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=v.device).view(1, 3, 1, 1)
    v = (v / 255.0 - mean) / std
    gt, gh, gw = t // TEMPORAL_PATCH, h // PATCH, w // PATCH
    x = v.reshape(gt, TEMPORAL_PATCH, c, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, c * TEMPORAL_PATCH * PATCH * PATCH).contiguous(), [gt, gh, gw]


def _writable(frames):
    """Frames from the object store are read-only numpy views, which torch will not wrap."""
    if isinstance(frames, torch.Tensor):
        return frames
    a = np.asarray(frames)
    return a if a.flags.writeable else a.copy()


def num_video_tokens(grid: list[int]) -> int:
    t, h, w = grid
    return t * h * w // (MERGE * MERGE)


def grid_for_frames(num_frames: int, height: int, width: int) -> list[int]:
    t = (num_frames + TEMPORAL_PATCH - 1) // TEMPORAL_PATCH
    return [t, height // PATCH, width // PATCH]


def second_per_grid(fps: float) -> float:
    """Seconds covered by one temporal patch (2 frames) of a clip sampled at `fps`."""
    return TEMPORAL_PATCH / fps
