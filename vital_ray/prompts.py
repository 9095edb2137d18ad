"""Prompt text and the exact token wrappers of VITAL's conversations (docs/method.md §1.3).

We render token ids ourselves (token-in/token-out), so training sequences are byte-identical to what the
rollout engine saw: no chat-template drift between SFT, RL, eval and serving.
"""

from __future__ import annotations

import json

SYSTEM = "You are a helpful assistant."
VIDEO_PLACEHOLDER = "<|vision_start|><|video_pad|><|vision_end|>"

THINK_GENERAL = (
    "This is a video with duration {duration} seconds.\n"
    "Think step by step before answering the question; an answer is mandatory.\n"
    "Put your reasoning inside <think> </think> and the final answer inside <answer> </answer>, i.e. "
    "<think> ... </think><answer> ... </answer>.\n"
    "User Question:\n{input_text}"
)

THINK_GENERAL_TOOL = (
    "This is a video with duration {duration} seconds.\n"
    "# Instruction\n"
    "1. Think inside <think> </think> and give the final answer inside <answer> </answer>.\n"
    "2. You may call the provided tool ONCE inside <tool_call> </tool_call> to get more visual information "
    "about a time range of the video.\n"
    "3. After the tool result, combine your earlier reasoning with the new visual evidence, think again and "
    "answer.\n"
    "# Output Format\n"
    "<think> ... </think> <tool_call> ... </tool_call> <think> ... </think> <answer> ... </answer>\n"
    "User Question:\n{input_text}"
)


def system_prompt(tool_schemas: list[dict] | None) -> str:
    if not tool_schemas:
        return SYSTEM
    sigs = "\n".join(json.dumps(s, ensure_ascii=False) for s in tool_schemas)
    return (
        f"{SYSTEM}\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{sigs}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def user_text(question: str, duration: float, tools: bool) -> str:
    template = THINK_GENERAL_TOOL if tools else THINK_GENERAL
    return template.format(duration=f"{duration:.2f}", input_text=question)


def prompt_string(question: str, duration: float, tool_schemas: list[dict] | None) -> str:
    """System + user (one video placeholder) + the assistant header the model continues from."""
    return (
        f"<|im_start|>system\n{system_prompt(tool_schemas)}<|im_end|>\n"
        f"<|im_start|>user\n{VIDEO_PLACEHOLDER}{user_text(question, duration, bool(tool_schemas))}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def clip_turn_string(result_text: str, with_video: bool) -> str:
    """The tool turn appended after a `</tool_call>` stop (VITAL's wrapper, docs/method.md §1.3). Error results are text."""
    video = VIDEO_PLACEHOLDER if with_video else ""
    return f"<|im_end|>\n<|im_start|>tool\n{video}{plain_text(result_text)}<|im_end|>\n<|im_start|>assistant\n"


def plain_text(text: str) -> str:
    """Tool-turn text may echo model-written strings (an unknown tool name): no lone surrogates (the tokenizer
    rejects them) and no special-token markup (a stray `<|video_pad|>` would claim a clip that is not there)."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("<|", "< |")


def answer_turn_end() -> str:
    """Closes an assistant turn in SFT targets (RL stops at `</answer>` without it, as VITAL does)."""
    return "<|im_end|>\n"
