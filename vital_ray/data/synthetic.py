"""Synthetic long videos with known events, and VITAL-format tasks over them.

Each video shows a drifting distractor and a sequence of events: a coloured shape (red square, blue circle, ...)
appears for a few seconds with a small letter written inside. The letter is legible at clip resolution
(~224 px) but not in the sparse, coarse global view, and short events fall between global-view frames, so the
clip tool genuinely helps. Written as H.264 with a short GOP (cheap seeks) through PyAV.
"""

from __future__ import annotations

import json
import os
import random
import string
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vital_ray.data import flash
from vital_ray.data.records import Record, load_records, save_records

COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 240), "yellow": (240, 220, 40),
           "magenta": (220, 50, 220), "cyan": (40, 220, 230)}
SHAPES = ("square", "circle", "triangle")
TG_TEMPLATE = (
    "Give the query: 'the {desc} appears on screen', when does the described content occur in the video? "
    "Please return its start time and end time. Answer in the format 'The event happens in the start time - "
    "end time'. For example, 'The event happens in the 24.30 - 30.42 seconds.'"
)
MCQ_TEMPLATE = "Which letter is written inside the {desc}?\nOptions:\n{options}\nAnswer with the option's letter."


@dataclass
class Event:
    colour: str
    shape: str
    letter: str
    start: float
    end: float
    x: int
    y: int
    size: int

    @property
    def desc(self) -> str:
        return f"{self.colour} {self.shape}"


def plan_events(duration: float, size: tuple[int, int], rng: random.Random) -> list[Event]:
    """Non-overlapping events of 3-10 s with distinct (colour, shape) pairs, spread over the video."""
    w, h = size
    kinds = [(c, s) for c in COLOURS for s in SHAPES]
    rng.shuffle(kinds)
    events, t = [], rng.uniform(2.0, 8.0)
    side = max(24, min(w, h) // 5)
    while kinds and t + 3.0 < duration - 1.0:
        length = rng.uniform(3.0, 10.0)
        end = min(t + length, duration - 1.0)
        colour, shape = kinds.pop()
        events.append(Event(colour, shape, rng.choice(string.ascii_uppercase), round(t, 2), round(end, 2),
                            rng.randint(0, w - side), rng.randint(0, h - side), side))
        t = end + rng.uniform(4.0, 20.0)
    return events


def _sprite(ev: Event) -> tuple[np.ndarray, np.ndarray]:
    """RGB patch and alpha mask of the shape with its letter."""
    img = Image.new("RGBA", (ev.size, ev.size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    s, col = ev.size - 1, COLOURS[ev.colour] + (255,)
    if ev.shape == "square":
        d.rectangle([0, 0, s, s], fill=col)
    elif ev.shape == "circle":
        d.ellipse([0, 0, s, s], fill=col)
    else:
        d.polygon([(s // 2, 0), (s, s), (0, s)], fill=col)
    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", max(8, ev.size // 3))
    except OSError:
        font = ImageFont.load_default()
    box = d.textbbox((0, 0), ev.letter, font=font)
    d.text(((ev.size - (box[2] - box[0])) / 2 - box[0], (ev.size - (box[3] - box[1])) * 0.6 - box[1]), ev.letter,
           fill=(255, 255, 255, 255), font=font)
    arr = np.asarray(img)
    return arr[..., :3], arr[..., 3:] > 0


def encode_video(path: str, duration: float, size: tuple[int, int], fps: int, frame_at) -> None:
    """H.264 yuv420p, GOP of 1 s (short: cheap seeks for the clip tool); `frame_at(t)` -> (H, W, 3) uint8.
    Written to a temporary name and renamed, so a killed run never leaves a truncated video behind."""
    import av

    w, h = size
    tmp = f"{path}.tmp.mp4"
    with av.open(tmp, "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28", "g": str(fps), "keyint_min": str(fps)}
        stream.codec_context.thread_count = 1
        for i in range(int(round(duration * fps))):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame_at(i / fps), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)


def write_video(path: str, duration: float, events: list[Event], size=(320, 240), fps: int = 10, seed: int = 0):
    w, h = size
    rng = np.random.default_rng(seed)
    base = (np.full((h, w, 3), 40, np.uint8) + rng.integers(0, 12, (h, w, 1), dtype=np.uint8))
    sprites = [_sprite(ev) for ev in events]

    def frame_at(t: float) -> np.ndarray:
        frame = base.copy()
        # a drifting grey distractor so the video is never static
        cx = int((0.5 + 0.4 * np.sin(t / 7.0)) * (w - 20))
        cy = int((0.5 + 0.4 * np.cos(t / 5.0)) * (h - 20))
        frame[cy:cy + 20, cx:cx + 20] = 150
        for ev, (rgb, mask) in zip(events, sprites):
            if ev.start <= t < ev.end:
                region = frame[ev.y:ev.y + ev.size, ev.x:ev.x + ev.size]
                np.copyto(region, rgb, where=mask)
        return frame

    encode_video(path, duration, size, fps, frame_at)


def make_records(video: str, vid: str, duration: float, events: list[Event], tasks, per_video: int,
                 rng: random.Random) -> list[Record]:
    out = []
    for k, ev in enumerate(rng.sample(events, min(per_video, len(events)))):
        task = tasks[k % len(tasks)]
        common = dict(video=video, duration=duration, extra={"event_span": [ev.start, ev.end], "event": asdict(ev)})
        if task == "tg":
            out.append(Record(id=f"{vid}_tg{k}", text=TG_TEMPLATE.format(desc=ev.desc), solution=[ev.start, ev.end],
                              data_source="synthetic/tg", **common))
        elif task == "mcq":
            letters = [ev.letter] + rng.sample([c for c in string.ascii_uppercase if c != ev.letter], 3)
            rng.shuffle(letters)
            options = "\n".join(f"{'ABCD'[i]}. {c}" for i, c in enumerate(letters))
            out.append(Record(id=f"{vid}_mcq{k}", text=MCQ_TEMPLATE.format(desc=ev.desc, options=options),
                              solution="ABCD"[letters.index(ev.letter)], data_source="synthetic/mcq", **common))
        else:
            raise ValueError(f"unknown synthetic task {task!r} (known: tg, mcq, flash)")
    return out


def generate_dataset(out_dir: str, num_videos: int = 4, duration_s: float = 120.0, tasks=("tg", "mcq"),
                     records_per_video: int = 4, seed: int = 0, size=(320, 240), fps: int = 10):
    """-> (records, json_path). Reuses an existing dataset generated with the same parameters."""
    os.makedirs(out_dir, exist_ok=True)
    params = {"num_videos": num_videos, "duration_s": duration_s, "tasks": list(tasks),
              "records_per_video": records_per_video, "seed": seed, "size": list(size), "fps": fps, "version": 2}
    json_path = os.path.join(out_dir, "records.json")
    manifest = os.path.join(out_dir, "manifest.json")
    if os.path.exists(manifest) and os.path.exists(json_path):
        with open(manifest) as f:
            if json.load(f) == params:
                return load_records(json_path)[0], json_path
    rng = random.Random(seed)
    records = []
    event_tasks = [t for t in tasks if t != "flash"]
    for v in range(num_videos):
        vid = f"synth_{seed}_{v:03d}"
        if event_tasks:
            path = os.path.join(out_dir, f"{vid}.mp4")
            events = plan_events(duration_s, size, rng)
            write_video(path, duration_s, events, size, fps, seed=seed * 1000 + v)
            records += make_records(path, vid, duration_s, events, event_tasks, records_per_video, rng)
        if "flash" in tasks:  # its own fixed-length, low-resolution videos (vital_ray.data.flash)
            path = os.path.join(out_dir, f"{vid}_flash.mp4")
            flashes = flash.plan_flashes(rng)
            encode_video(path, flash.DURATION_S, flash.SIZE, flash.FPS,
                         flash.flash_frames(flashes, flash.SIZE, seed * 1000 + v))
            records += flash.flash_records(path, vid, flashes, records_per_video, rng)
    save_records(records, json_path)
    with open(manifest, "w") as f:
        json.dump(params, f)
    return records, json_path
