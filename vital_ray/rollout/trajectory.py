"""One multi-turn trajectory as token ids + loss mask + log-probs, and the rules that advance it.

Pure Python: the scheduler (Ray) calls these; tests call them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vital_ray import prompts
from vital_ray.models import vision


@dataclass
class VideoRef:
    """A clip in the conversation. `frames` is a Ray ObjectRef to a uint8 (T,H,W,3) array (or the array itself
    outside Ray); pixels never travel inline with the trajectory."""

    frames: Any
    shape: tuple[int, int, int, int]
    fps: float
    start: float
    end: float

    @classmethod
    def from_meta(cls, meta: dict, frames) -> "VideoRef":
        """From a tool result's metadata (shape, fps, start, end) and its frames (or their ref)."""
        return cls(frames, tuple(meta["shape"]), meta["fps"], meta["start"], meta["end"])

    @property
    def grid(self) -> list[int]:
        t, h, w, _ = self.shape
        return vision.grid_for_frames(t, h, w)

    @property
    def num_tokens(self) -> int:
        return vision.num_video_tokens(self.grid)

    @property
    def second_per_grid(self) -> float:
        return vision.second_per_grid(self.fps)


@dataclass
class Trajectory:
    uid: str  # prompt group id
    sample_id: str
    task: str  # record data_source
    solution: Any
    video_path: str
    duration: float
    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    videos: list[VideoRef]
    prompt_len: int
    gen_texts: list[str] = field(default_factory=list)
    turns: int = 0
    tool_calls: int = 0
    tool_ok: int = 0
    gen_tokens: int = 0
    tool_tokens: int = 0
    tool_events: list[dict] = field(default_factory=list)
    done: bool = False
    stop_reason: str = ""
    reward: float = 0.0
    reward_components: dict = field(default_factory=dict)
    correct: bool = False
    advantage: float = 0.0

    @property
    def response_len(self) -> int:
        return len(self.token_ids) - self.prompt_len

    @property
    def response_text(self) -> str:
        """What the reward scores: the model's own turns only (tool outputs excluded, as VITAL)."""
        return "".join(self.gen_texts)


class TokenCodec:
    """Text <-> ids with `<|video_pad|>` expanded to a clip's token count."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.video_pad = tokenizer.convert_tokens_to_ids("<|video_pad|>")

    def encode(self, text: str, clips: list[VideoRef] = ()) -> list[int]:
        ids = self.tok.encode(text, add_special_tokens=False)
        slots = [i for i, t in enumerate(ids) if t == self.video_pad]
        if len(slots) != len(clips):
            raise ValueError(f"{len(slots)} video placeholders but {len(clips)} clips")
        out: list[int] = []
        prev = 0
        for slot, clip in zip(slots, clips):
            out += ids[prev:slot] + [self.video_pad] * clip.num_tokens
            prev = slot + 1
        return out + ids[prev:]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)

    def encode_tool_turn(self, result_text: str, clip: VideoRef | None) -> list[int]:
        return self.encode(prompts.clip_turn_string(result_text, clip is not None), [clip] if clip else [])


def new_trajectory(codec: TokenCodec, record, global_view: VideoRef, uid: str, index: int,
                   tool_schemas: list[dict] | None) -> Trajectory:
    ids = codec.encode(prompts.prompt_string(record.text, record.duration, tool_schemas), [global_view])
    return Trajectory(
        uid=uid, sample_id=f"{record.id}#{index}", task=record.data_source, solution=record.solution,
        video_path=record.video, duration=record.duration, token_ids=ids, loss_mask=[0] * len(ids),
        logprobs=[0.0] * len(ids), videos=[global_view], prompt_len=len(ids),
    )


def append_generation(traj: Trajectory, ids: list[int], logprobs: list[float], text: str) -> None:
    traj.token_ids += ids
    traj.loss_mask += [1] * len(ids)
    traj.logprobs += logprobs
    traj.gen_texts.append(text)
    traj.gen_tokens += len(ids)
    traj.turns += 1


def append_tool_turn(traj: Trajectory, ids: list[int], clip: VideoRef | None) -> None:
    """Append an encoded tool turn (`TokenCodec.encode_tool_turn`); it gets loss mask 0."""
    if clip is not None:
        traj.videos.append(clip)
    traj.token_ids += ids
    traj.loss_mask += [0] * len(ids)
    traj.logprobs += [0.0] * len(ids)
    traj.tool_tokens += len(ids)


def remaining_budget(traj: Trajectory, max_total_tokens: int) -> int:
    return max_total_tokens - traj.response_len


def finish(traj: Trajectory, reason: str) -> None:
    traj.done = True
    traj.stop_reason = reason
