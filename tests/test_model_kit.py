"""The offline model kit: real tokenizer ids, HF folder round trip, torchvision-free processor, positions."""

import numpy as np
import pytest
import torch

from vital_ray.models import load_model_bundle
from vital_ray.models.inputs import SeqInput, VideoInput, collate
from vital_ray.models.positions import mrope_positions
from vital_ray.models.processor import load_processor
from vital_ray.models.vision import frames_to_patches, num_video_tokens


def test_tokenizer_has_real_qwen_ids(tiny_model_path):
    tok = load_model_bundle(tiny_model_path).tokenizer
    assert tok.encode("Hello world") == [9707, 1879]
    ids = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|vision_start|>", "<|video_pad|>",
                                     "<tool_call>", "</tool_call>"])
    assert ids == [151643, 151644, 151652, 151656, 151657, 151658]
    # tool-call tags are not "special": they survive skip_special_tokens, so rewards see them
    text = "<think>a</think><tool_call>{}</tool_call>"
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == text


def test_folder_loads_with_plain_from_pretrained(tiny_model_path):
    from transformers import AutoModelForImageTextToText, Qwen2_5_VLForConditionalGeneration

    m = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_path)
    assert type(m).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert AutoModelForImageTextToText.from_pretrained(tiny_model_path).config.model_type == "qwen2_5_vl"


def test_saved_processor_matches_our_patches(tiny_model_path):
    """The processor saved with the model (transformers' own where torchvision exists, else the torch-only one)
    gives the patches the rollout and learner compute, up to float rounding of the normalisation."""
    proc = load_processor(tiny_model_path)
    frames = np.random.default_rng(0).integers(0, 255, (4, 112, 84, 3), dtype=np.uint8)
    out = proc.video_processor(videos=[frames], return_tensors="pt")
    ours, grid = frames_to_patches(frames)
    assert out["video_grid_thw"].tolist() == [grid] == [[2, 8, 6]]
    torch.testing.assert_close(out["pixel_values_videos"], ours, rtol=0, atol=1e-5,
                               msg=lambda m: f"{type(proc.video_processor).__name__}: {m}")


def test_patch_rows_follow_the_qwen2_vl_layout_by_index():
    """Independent of our reshape: row ((t * H/28 + bh) * W/28 + bw) * 4 + 2 * mh + mw holds the 14x14 patch at
    (28 bh + 14 mh, 28 bw + 14 mw) of frames 2t and 2t+1, CLIP-normalised, flattened channel, time, row, column."""
    mean, std = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])
    frames = np.random.default_rng(1).integers(0, 255, (4, 56, 84, 3), dtype=np.uint8)
    rows, grid = frames_to_patches(frames)
    assert grid == [2, 4, 6] and rows.shape == (48, 3 * 2 * 14 * 14)
    for t, bh, bw, mh, mw in [(0, 0, 0, 0, 0), (0, 0, 0, 1, 1), (1, 1, 2, 0, 1), (1, 1, 0, 1, 0), (0, 1, 2, 1, 1)]:
        y, x = 28 * bh + 14 * mh, 28 * bw + 14 * mw
        patch = (frames[2 * t:2 * t + 2, y:y + 14, x:x + 14] / 255.0 - mean) / std  # (time, row, col, channel)
        want = patch.transpose(3, 0, 1, 2).reshape(-1)
        row = ((t * 2 + bh) * 3 + bw) * 4 + 2 * mh + mw
        np.testing.assert_allclose(rows[row].numpy(), want, rtol=0, atol=1e-5)


def test_odd_frame_count_is_padded_and_bad_size_rejected():
    _, grid = frames_to_patches(np.zeros((3, 56, 56, 3), np.uint8))
    assert grid == [2, 4, 4] and num_video_tokens(grid) == 8
    with pytest.raises(ValueError, match="multiple of 28"):
        frames_to_patches(np.zeros((2, 50, 56, 3), np.uint8))


def test_positions_follow_reference_rule_after_long_clip():
    V = 151656
    # text(3) + video grid t=4,h=4,w=4 (4*2*2=16 tokens) spanning 100 s at 0.1 fps-equivalent + text(2)
    ids = torch.tensor([1, 2, 3] + [V] * 16 + [4, 5])
    pos = mrope_positions(ids, [[4, 4, 4]], [10.0], V, tokens_per_second=2)
    assert pos[:, :3].tolist() == [[0, 1, 2]] * 3
    # temporal index jumps by spg*tps = 20 per temporal patch
    assert pos[0, 3:19].unique().tolist() == [3, 23, 43, 63]
    # text resumes at max(all positions) + 1 (vLLM/Qwen2-VL rule), not at pos + max(h,w)/2
    assert pos[:, 19].tolist() == [64, 64, 64]
    with pytest.raises(ValueError, match="grids"):
        mrope_positions(ids, [], [], V, 2)


def test_collate_left_and_right_padding_give_same_positions(tiny_model_path):
    cfg = load_model_bundle(tiny_model_path).config
    frames = np.zeros((2, 56, 56, 3), np.uint8)
    V = cfg.video_token_id
    a = SeqInput([1, 2, V, V, V, V, 3], [VideoInput(frames, 1.0)])
    b = SeqInput([5, 6, 7])
    left = collate([a, b], cfg, 0, left_pad=True)
    right = collate([a, b], cfg, 0, left_pad=False)
    assert left["offsets"] == [0, 4] and right["offsets"] == [0, 0]
    assert torch.equal(left["position_ids"][:, 1, 4:], right["position_ids"][:, 1, :3])
    assert left["pixel_values_videos"].shape[0] == 16 and left["video_grid_thw"].tolist() == [[1, 4, 4]]


def test_batched_vit_attention_matches_transformers_per_window_loop(tiny_model_path):
    """Frame sizes give windows of several lengths (edge windows are smaller) and a clip of odd frame count:
    the batched attention must give the same ViT output and input gradients as transformers' loop."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as stock

    from vital_ray.models.attention import load_qwen_vl, use_batched_vision_attention

    loop = load_qwen_vl(tiny_model_path, torch.float32, batched_vision_attention=False)
    batched = load_qwen_vl(tiny_model_path, torch.float32)
    assert type(loop.model.visual.blocks[0].attn) is stock.Qwen2_5_VLVisionAttention
    assert type(batched.model.visual.blocks[0].attn) is not stock.Qwen2_5_VLVisionAttention
    assert batched.config.text_config._attn_implementation == loop.config.text_config._attn_implementation
    rng = np.random.default_rng(0)
    rows, grids = [], []
    for t, h, w in [(16, 168, 308), (5, 112, 140), (2, 56, 56)]:
        p, g = frames_to_patches(rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8))
        rows.append(p)
        grids.append(g)
    grid = torch.tensor(grids)
    outs, grads = [], []
    for m in (loop, batched):
        px = torch.cat(rows).requires_grad_(True)
        out = m.model.visual(px, grid_thw=grid)
        out = getattr(out, "pooler_output", out)
        (g,) = torch.autograd.grad((out ** 2).sum(), px)
        outs.append(out.detach())
        grads.append(g)
    assert outs[0].abs().mean() > 0
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-7)
    use_batched_vision_attention(batched, False)  # and back: the stock class, same weights
    assert type(batched.model.visual.blocks[0].attn) is stock.Qwen2_5_VLVisionAttention
    out = batched.model.visual(torch.cat(rows), grid_thw=grid)
    torch.testing.assert_close(getattr(out, "pooler_output", out), outs[0])


def test_batched_vit_attention_refuses_inconsistent_cu_seqlens():
    from vital_ray.models.attention import windowed_attention

    q = torch.zeros(2, 4, 8)
    with pytest.raises(ValueError, match="cu_seqlens cover 3 tokens, the input has 4"):
        windowed_attention(q, q, q, torch.tensor([0, 3]))
