"""Build, save and load Qwen2.5-VL models: a tiny random one offline, or any local HF folder (e.g. 7B-Instruct)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass

import torch

from vital_ray.config import ModelConfig, expand
from vital_ray.models.tokenizer import build_qwen_tokenizer

VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")


@dataclass
class ModelBundle:
    model: torch.nn.Module
    tokenizer: object
    path: str

    @property
    def config(self):
        return self.model.config

    @property
    def suppressed_ids(self) -> list[int]:
        return suppressed_token_ids(self.tokenizer, self.model.config.text_config.vocab_size)


def suppressed_token_ids(tokenizer, vocab_size: int) -> list[int]:
    """Ids the policy must never sample (every backend): vision placeholders (they break the training forward,
    docs/engineering-notes.md §1) and the embedding rows past the tokenizer's vocabulary."""
    vision = [tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS]
    return vision + list(range(len(tokenizer), vocab_size))


def _tiny_config(tok, cfg: ModelConfig):
    from transformers import Qwen2_5_VLConfig

    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", *VISION_TOKENS)}
    hidden, heads = cfg.tiny_hidden, 4
    head_dim = hidden // heads
    if head_dim % 8:
        raise ValueError(f"model.tiny_hidden={hidden} must be a multiple of 32")
    half = head_dim // 2  # mrope_section must sum to head_dim/2
    section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=math.ceil(len(tok) / 64) * 64, hidden_size=hidden, intermediate_size=2 * hidden,
            num_hidden_layers=cfg.tiny_layers, num_attention_heads=heads, num_key_value_heads=2,
            max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "mrope_section": section, "rope_theta": 1e6},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
            tie_word_embeddings=True,
        ),
        vision_config=dict(
            depth=cfg.tiny_vision_depth, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=heads,
            out_hidden_size=hidden, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
            fullatt_block_indexes=[cfg.tiny_vision_depth - 1], tokens_per_second=2,
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


# Qwen2.5-VL-3B-Instruct's shapes (its config.json), for GPU benchmarks with random weights (no downloads there)
QWEN2_5_VL_3B = dict(
    text=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
              num_key_value_heads=2, max_position_embeddings=128000, rms_norm_eps=1e-6, vocab_size=151936,
              rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1e6}),
    vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                fullatt_block_indexes=[7, 15, 23, 31]),
)


def _preset_config(tok, preset: dict):
    from transformers import Qwen2_5_VLConfig

    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", *VISION_TOKENS)}
    return Qwen2_5_VLConfig(
        text_config=dict(**preset["text"], bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=True),
        vision_config=dict(**preset["vision"], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           window_size=112, tokens_per_second=2, hidden_act="silu"),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def build_tiny_model_folder(path: str, cfg: ModelConfig, preset: dict | None = None, device: str = "cpu",
                            dtype: torch.dtype = torch.float32) -> str:
    """Write a random-weight Qwen2.5-VL with the real architecture and tokenizer as a normal HF folder: the tiny
    one from `cfg`, or a `preset`'s shapes (e.g. QWEN2_5_VL_3B, built on `device` in `dtype`)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vital_ray.models.processor import build_processor

    tok = build_qwen_tokenizer()
    torch.manual_seed(cfg.seed)
    config = _preset_config(tok, preset) if preset else _tiny_config(tok, cfg)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config).to(dtype)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    build_processor(tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def ensure_model_folder(cfg: ModelConfig) -> str:
    """`cfg.path` if set, else the cached tiny model folder (built on first use)."""
    if cfg.path:
        path = expand(cfg.path)
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise FileNotFoundError(f"model.path={cfg.path!r} is not a HF model folder (no config.json)")
        return path
    key = hashlib.sha1(json.dumps([cfg.tiny_hidden, cfg.tiny_layers, cfg.tiny_vision_depth, cfg.seed]).encode())
    path = os.path.join(expand(cfg.cache_dir), f"tiny-qwen2_5_vl-{key.hexdigest()[:10]}")
    if not os.path.isfile(os.path.join(path, "model.safetensors")):
        tmp = f"{path}.tmp{os.getpid()}"
        build_tiny_model_folder(tmp, cfg)
        try:
            os.replace(tmp, path)  # atomic: concurrent builders (tests, actors) never see half a folder
        except OSError:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def load_model_bundle(path: str, dtype: str = "float32", device: str | torch.device = "cpu") -> ModelBundle:
    from transformers import AutoTokenizer

    from vital_ray.models.attention import load_qwen_vl

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    model = load_qwen_vl(path, torch_dtype, device)
    model.eval()
    tok = AutoTokenizer.from_pretrained(path)
    return ModelBundle(model=model, tokenizer=tok, path=path)
