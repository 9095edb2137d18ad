"""A Qwen2.5-VL processor that works without torchvision (saved with the model for HF/vLLM users).

transformers' own video processor imports torchvision, which has no CPU build here; this one resizes with
torch and patchifies with `vision.frames_to_patches`, the code path the rollout and learner use.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BatchFeature
try:
    from transformers.video_processing_utils import VideoProcessorMixin
except ImportError:  # transformers 5.17 (the GPU image) names the base class BaseVideoProcessor
    from transformers.video_processing_utils import BaseVideoProcessor as VideoProcessorMixin
from transformers.video_utils import make_batched_metadata, make_batched_videos

from vital_ray.models import vision
from vital_ray.tools.video_io import smart_resize

class TorchQwen2VLVideoProcessor(VideoProcessorMixin):
    size = {"shortest_edge": 4 * 784, "longest_edge": 64 * 784}
    image_mean, image_std = list(vision.MEAN), list(vision.STD)
    patch_size, temporal_patch_size, merge_size = vision.PATCH, vision.TEMPORAL_PATCH, vision.MERGE
    do_sample_frames = False
    return_metadata = False
    model_input_names = ["pixel_values_videos", "video_grid_thw"]

    def preprocess(self, videos, video_metadata=None, return_metadata=None, return_tensors=None, size=None, **_):
        videos = make_batched_videos(videos)
        video_metadata = make_batched_metadata(videos, video_metadata=video_metadata)
        size = size or self.size
        rows, grids = [], []
        for v in videos:
            v = torch.as_tensor(np.asarray(v))
            if v.shape[1] in (1, 3, 4) and v.shape[-1] not in (1, 3, 4):  # TCHW -> THWC
                v = v.permute(0, 2, 3, 1)
            h, w = smart_resize(v.shape[1], v.shape[2], 28, size["shortest_edge"], size["longest_edge"])
            if (h, w) != tuple(v.shape[1:3]):
                x = F.interpolate(v[..., :3].permute(0, 3, 1, 2).float(), size=(h, w), mode="bicubic",
                                  antialias=True)
                v = x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)
            patches, grid = vision.frames_to_patches(v[..., :3])
            rows.append(patches)
            grids.append(grid)
        out = BatchFeature({"pixel_values_videos": torch.cat(rows), "video_grid_thw": torch.tensor(grids)},
                           tensor_type=return_tensors)
        if self.return_metadata if return_metadata is None else return_metadata:
            out["video_metadata"] = video_metadata
        return out


@contextlib.contextmanager
def _video_processor_base_visible():
    """ProcessorMixin checks each sub-processor against a base class it looks up by name on the top-level
    `transformers` module, where without torchvision there is none (and the `AutoVideoProcessor.register`
    route fails the same way: its mapping is a torchvision placeholder). Expose ours for the check only."""
    import transformers.processing_utils as pu

    module = pu.transformers_module
    if hasattr(module, "VideoProcessorMixin"):
        yield
        return
    setattr(module, "VideoProcessorMixin", VideoProcessorMixin)
    try:
        yield
    finally:
        delattr(module, "VideoProcessorMixin")


def build_processor(tokenizer):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessorPil

    image = Qwen2VLImageProcessorPil(size={"shortest_edge": 4 * 784, "longest_edge": 256 * 784})
    with _video_processor_base_visible():
        return Qwen2_5_VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=_video_processor())


def _video_processor():
    """transformers' own where torchvision exists (GPU machines), else the torch-only one above."""
    try:
        import torchvision  # noqa: F401
        from transformers import Qwen2VLVideoProcessor

        return Qwen2VLVideoProcessor(size={"shortest_edge": 784, "longest_edge": 16384 * 784}, do_sample_frames=False)
    except (ImportError, RuntimeError):
        return TorchQwen2VLVideoProcessor()


def load_processor(path: str):
    """Reassemble the processor from a model folder (AutoProcessor needs torchvision; this does not)."""
    from transformers import AutoTokenizer

    return build_processor(AutoTokenizer.from_pretrained(path))
