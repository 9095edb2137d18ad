"""The flash task: the answer is in the slot's clip and never in the global view, decoded from the real mp4s."""

import random

import numpy as np
import pytest

from vital_ray.config import ToolConfig, VideoViewConfig
from vital_ray.data import flash
from vital_ray.data.records import load_records, tool_window
from vital_ray.data.synthetic import generate_dataset
from vital_ray.data.traces import teacher_trace
from vital_ray.tools.clip_tool import get_video_clip_frame
from vital_ray.tools.video_io import sample_global_view

PX = 12544  # the demo's view and tool pixel budget


def colour_of(frame: np.ndarray) -> str | None:
    """The flash colour a frame shows (its mean within 40 of the colour), else None."""
    mean = frame.reshape(-1, 3).mean(0)
    for name, rgb in flash.FLASH_COLOURS.items():
        if np.abs(mean - np.array(rgb)).max() < 40:
            return name
    return None


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    records, path = generate_dataset(str(tmp_path_factory.mktemp("flash")), num_videos=3, tasks=("flash",),
                                     records_per_video=4, seed=7)
    return records, path


def test_flash_only_in_the_slot_clip(dataset):
    records, _ = dataset
    assert len(records) == 12 and {r.video_kwargs["max_frames"] for r in records} == set(flash.VIEW_BUDGETS)
    for r in records:
        for budget in flash.VIEW_BUDGETS:  # whichever budget a prompt gets, its view shows no flash
            view = sample_global_view(r.video, r.duration, VideoViewConfig(max_frames=budget, max_pixels=PX))
            assert len(view.frames) == budget
            assert [colour_of(f) for f in view.frames] == [None] * budget, r.id
        start, end = tool_window(r.tool_params, r.duration, r.id)
        assert (start, end) == (r.extra["slot"] * flash.SLOT_S, (r.extra["slot"] + 1) * flash.SLOT_S)
        clip = get_video_clip_frame(r.video, start, end, r.duration, ToolConfig(max_frames=8, max_pixels=PX)).clip
        seen = {colour_of(f) for f in clip.frames} - {None}
        assert seen == {r.extra["colour"]}, r.id
        assert r.solution == "ABCD"[list(flash.FLASH_COLOURS).index(r.extra["colour"])]
        assert flash.SLOT_PHRASES[r.extra["slot"]] in r.text


def test_records_round_trip_and_teacher_calls_the_slot(dataset):
    records, path = dataset
    loaded, errors = load_records(path)
    assert not errors and [r.id for r in loaded] == [r.id for r in records]
    for r in loaded:
        trace = teacher_trace(r, random.Random(0))
        assert (trace.start, trace.end) == tool_window(r.tool_params, r.duration, r.id)
        assert f'"start_time": {trace.start}' in trace.turn1 and trace.turn2.endswith(f"<answer>{r.solution}</answer>")
