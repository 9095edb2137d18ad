"""Parse and validate an OpenAI chat-completions request into what the tool loop needs.

A request names one video, as a content part of the last user message (`{"type": "video_url", "video_url":
{"url": ...}}`, vLLM's form, or `{"type": "video", "video": ...}`, Qwen's form) or as a top-level `"video"`.
The question is the text of the last user message (VITAL's prompt holds one question; earlier turns are not
replayed). A final assistant message is a prefill the model continues (vLLM's `continue_final_message`).
The body's shape is `ChatBody` (pydantic); every problem is a `RequestError` with a 4xx status that names it.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

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


Number = Annotated[float, Field(strict=True)]  # ints and floats; no bools, no numeric strings
Integer = Annotated[int, Field(strict=True)]


class TextPart(BaseModel):
    type: Literal["text"]
    text: StrictStr


class VideoUrl(BaseModel):
    url: StrictStr


class VideoUrlPart(BaseModel):
    type: Literal["video_url"]
    video_url: VideoUrl


class VideoPart(BaseModel):
    type: Literal["video"]
    video: StrictStr


Part = Annotated[Union[TextPart, VideoUrlPart, VideoPart], Field(discriminator="type")]


class Message(BaseModel):
    role: Literal[_ROLES]
    content: Union[StrictStr, list[Part], None] = None

    def text_and_videos(self) -> tuple[str, list[str]]:
        if not isinstance(self.content, list):
            return self.content or "", []
        texts = [p.text for p in self.content if isinstance(p, TextPart)]
        videos = [p.video_url.url if isinstance(p, VideoUrlPart) else p.video for p in self.content
                  if not isinstance(p, TextPart)]
        return "\n".join(texts), videos


class ChatBody(BaseModel):
    """The fields of an OpenAI chat-completions body this server reads; others (penalties, logprobs, ...) are
    accepted and ignored, as OpenAI clients send them by default."""
    model_config = ConfigDict(extra="ignore")
    model: StrictStr = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    video: Optional[StrictStr] = None
    n: Integer = Field(1, ge=1, le=1)
    stream: StrictBool = False
    max_tokens: Optional[Integer] = Field(None, ge=1, le=2**31)
    max_completion_tokens: Optional[Integer] = Field(None, ge=1, le=2**31)
    temperature: Optional[Number] = Field(None, ge=0.0, le=2.0)
    top_p: Optional[Number] = Field(None, ge=1e-6, le=1.0)
    seed: Optional[Integer] = Field(None, ge=0, le=2**31 - 1)


_CODES = {"model": "invalid_value", "messages": "invalid_messages", "video": "invalid_video"}


def _as_request_error(e: ValidationError) -> RequestError:
    """The first problem as a 400 naming its field, with the endpoint's stable error codes."""
    err = e.errors()[0]
    loc = [str(x) for x in err["loc"]]
    field = loc[0] if loc else None
    if field == "model" and err["type"] == "missing":
        return RequestError(400, "model is required", "missing_model", "model")
    where = "".join(f"[{x}]" if x.isdigit() else f".{x}" for x in loc).lstrip(".")
    return RequestError(400, f"{where}: {err['msg']}", _CODES.get(field, "invalid_value"), field)


def _no_special_tokens(text: str, where: str) -> None:
    m = _SPECIAL.search(text)
    if m:
        raise RequestError(400, f"{where} must not contain control tokens such as {m.group(0)}", "invalid_messages")


def parse_chat_request(body: dict, model_name: str) -> ChatRequest:
    try:
        chat = ChatBody.model_validate(body)
    except ValidationError as e:
        raise _as_request_error(e) from None
    if chat.model != model_name:
        raise RequestError(404, f"model {chat.model!r} does not exist; this server serves {model_name!r}",
                           "model_not_found", "model")
    messages = chat.messages
    prefill = ""
    if messages[-1].role == "assistant":
        prefill, videos = messages[-1].text_and_videos()
        if videos:
            raise RequestError(400, "an assistant message cannot carry a video", "invalid_messages")
        _no_special_tokens(prefill, "the assistant prefill")
    users = [m for m in messages if m.role == "user"]
    if not users:
        raise RequestError(400, "messages need a user message with the question", "invalid_messages", "messages")
    question, videos = users[-1].text_and_videos()
    if not question.strip():
        raise RequestError(400, "the last user message has no question text", "invalid_messages", "messages")
    _no_special_tokens(question, "the question")
    if chat.video is not None:
        videos.append(chat.video)
    if not videos:
        raise RequestError(400, "no video: add a video_url content part to the user message or a top-level "
                           "'video'", "missing_video", "video")
    if len(videos) > 1:
        raise RequestError(400, f"one video per request, got {len(videos)}", "invalid_video", "video")
    max_tokens = chat.max_completion_tokens if chat.max_completion_tokens is not None else chat.max_tokens
    return ChatRequest(model=chat.model, question=question, video=videos[0], prefill=prefill, max_tokens=max_tokens,
                       temperature=chat.temperature, top_p=chat.top_p, seed=chat.seed, stream=chat.stream)
