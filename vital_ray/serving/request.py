"""Parse and validate an OpenAI chat-completions request into what the tool loop needs.

A request names one video, as a content part of the last user message (`{"type": "video_url", "video_url":
{"url": ...}}`, vLLM's form, or `{"type": "video", "video": ...}`, Qwen's form) or as a top-level `"video"`.
The question is the text of the last user message (VITAL's prompt holds one question; earlier turns are not
replayed). A final assistant message is a prefill the model continues (vLLM's `continue_final_message`).
Every problem is a `RequestError` with a 4xx status that names it.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass

from vital_ray.serving.errors import RequestError

_ROLES = ("system", "user", "assistant", "tool", "developer")
_SPECIAL = re.compile(r"<\|[A-Za-z_]+\|>")  # chat-template / vision control tokens: never from a client


@dataclass
class ChatRequest:
    model: str
    question: str
    video: str  # a path (under the allowed roots), file:// or http(s) URL, as the client gave it
    prefill: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stream: bool = False


def check_auth(header: str | None, token: str | None) -> None:
    """No token configured: open. Otherwise `Authorization: Bearer <token>` (constant-time compare) or 401."""
    if not token:
        return
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise RequestError(401, "missing or invalid bearer token (send 'Authorization: Bearer <token>')",
                           "invalid_api_key")


def parse_body(raw: bytes, max_bytes: int) -> dict:
    if len(raw) > max_bytes:
        raise RequestError(413, f"request body of {len(raw)} bytes exceeds the limit of {max_bytes} bytes",
                           "request_too_large")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(400, f"request body is not valid JSON: {e}", "invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object", "invalid_json")
    return body


def _number(body: dict, key: str, lo: float, hi: float, integer: bool = False):
    v = body.get(key)
    if v is None:
        return None
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or not lo <= v <= hi:
        kind = "an integer" if integer else "a number"
        raise RequestError(400, f"{key} must be {kind} in [{lo}, {hi}], got {v!r}", "invalid_value", key)
    return v


def _text_and_videos(content, where: str) -> tuple[str, list[str]]:
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise RequestError(400, f"{where}.content must be a string or a list of parts", "invalid_messages")
    texts, videos = [], []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "video_url" and isinstance(part.get("video_url"), dict) \
                and isinstance(part["video_url"].get("url"), str):
            videos.append(part["video_url"]["url"])
        elif kind == "video" and isinstance(part.get("video"), str):
            videos.append(part["video"])
        else:
            raise RequestError(400, f"{where}.content[{i}]: unsupported part (expected text, video_url or video)",
                               "invalid_messages")
    return "\n".join(texts), videos


def _no_special_tokens(text: str, where: str) -> None:
    m = _SPECIAL.search(text)
    if m:
        raise RequestError(400, f"{where} must not contain control tokens such as {m.group(0)}", "invalid_messages")


def parse_chat_request(body: dict, model_name: str) -> ChatRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "model is required", "missing_model", "model")
    if model != model_name:
        raise RequestError(404, f"model {model!r} does not exist; this server serves {model_name!r}",
                           "model_not_found", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages must be a non-empty list", "invalid_messages", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise RequestError(400, f"messages[{i}] needs a role in {_ROLES}", "invalid_messages", "messages")
    prefill = ""
    if messages[-1]["role"] == "assistant":
        prefill, videos = _text_and_videos(messages[-1].get("content") or "", f"messages[{len(messages) - 1}]")
        if videos:
            raise RequestError(400, "an assistant message cannot carry a video", "invalid_messages")
        _no_special_tokens(prefill, "the assistant prefill")
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        raise RequestError(400, "messages need a user message with the question", "invalid_messages", "messages")
    question, videos = _text_and_videos(messages[users[-1]].get("content"), f"messages[{users[-1]}]")
    if not question.strip():
        raise RequestError(400, "the last user message has no question text", "invalid_messages", "messages")
    _no_special_tokens(question, "the question")
    if body.get("video") is not None:
        if not isinstance(body["video"], str):
            raise RequestError(400, "video must be a string (a path or URL)", "invalid_video", "video")
        videos.append(body["video"])
    if not videos:
        raise RequestError(400, "no video: add a video_url content part to the user message or a top-level "
                           "'video'", "missing_video", "video")
    if len(videos) > 1:
        raise RequestError(400, f"one video per request, got {len(videos)}", "invalid_video", "video")
    if body.get("n", 1) != 1:
        raise RequestError(400, "only n=1 is supported", "invalid_value", "n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "stream must be a boolean", "invalid_value", "stream")
    max_tokens = _number(body, "max_completion_tokens", 1, 2**31, True)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", 1, 2**31, True)
    return ChatRequest(model=model, question=question, video=videos[0], prefill=prefill, max_tokens=max_tokens,
                       temperature=_number(body, "temperature", 0.0, 2.0), top_p=_number(body, "top_p", 1e-6, 1.0),
                       seed=_number(body, "seed", 0, 2**31 - 1, True), stream=stream)
