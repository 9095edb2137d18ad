"""A file-backed store of each video's 2 fps frame grid, shared by the tool workers of a node (docs/frame-store.md).

An entry is the video's `source_fps` grid at the tool's pixel budget (its largest: the global view is resized
down from it), uint8 `.npy` read through mmap, plus a small `.json` written after it, which is the commit: a
reader only trusts an entry whose json exists and whose npy has the shape the json states. Both are written to a
temporary name and `os.replace`d into place, so a writer killed mid-write leaves nothing a reader opens. Writers
of the same entry serialise on an fcntl lock; the second finds the entry present and decodes nothing.

Keys: the video's real path (hash) and its size, mtime and the grid parameters (hash); a changed video has a
new key and its old entries are removed when the new one is written. A video that fails to decode is never
stored. The store is bounded in bytes; least recently read entries (json mtime, touched on every hit) go first.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from vital_ray.tools.decoders import open_decoder, resolve
from vital_ray.tools.decoders.base import VideoError, VideoSource

FILL_CHUNK = 64  # grid frames decoded per step while filling: bounds memory on long videos
STALE_TMP_S = 3600.0  # temporary files older than this are from a crashed writer


@dataclass(frozen=True)
class GridSpec:
    """What an entry holds: the grid rate and the pixel budget of its frames, and how it is decoded."""

    fps: float = 2.0
    min_pixels: int = 4 * 784
    max_pixels: int = 64 * 784
    decoder: str = "auto"
    max_source_pixels: int = 1920 * 1088


class StoreSource(VideoSource):
    """A stored grid as a video source: frame k is the frame shown at k / fps."""

    name = "store"

    def __init__(self, frames: np.ndarray, meta: dict):
        self.frames, self.fps = frames, float(meta["fps"])
        self.num_frames, self.duration = len(frames), float(meta["duration"])
        self.pixels = int(frames.shape[1] * frames.shape[2])

    def get_frames(self, times: list[float]) -> np.ndarray:
        idx = [min(self.num_frames - 1, max(0, int(math.floor(t * self.fps + 1e-6)))) for t in times]
        return np.asarray(self.frames[idx])


class FrameStore:
    def __init__(self, root: str, max_bytes: int, spec: GridSpec = GridSpec()):
        self.root, self.max_bytes, self.spec = root, int(max_bytes), spec
        os.makedirs(root, exist_ok=True)
        self.hits = self.misses = self.fills = 0  # this process's counts
        self._filler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-store-fill")
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()

    # -- keys -------------------------------------------------------------------------------------------------
    def key(self, path: str) -> str:
        """`<path hash>-<version hash>`; raises VideoError when the file cannot be stat'ed."""
        try:
            st = os.stat(path)
        except OSError:
            raise VideoError(path, "no such file") from None
        real, s = os.path.realpath(path), self.spec
        # not the decoder: every decoder yields the same grid (tests/test_decoders.py)
        version = f"{st.st_size}:{st.st_mtime_ns}:{s.fps}:{s.min_pixels}:{s.max_pixels}"
        return f"{_sha(real)[:16]}-{_sha(version)[:12]}"

    def _paths(self, key: str) -> tuple[str, str]:
        base = os.path.join(self.root, key)
        return base + ".npy", base + ".json"

    # -- reading ----------------------------------------------------------------------------------------------
    def _open(self, key: str) -> StoreSource | None:
        npy, meta_path = self._paths(key)
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            frames = np.load(npy, mmap_mode="r")
        except (OSError, ValueError):  # absent, or evicted between the two opens
            return None
        if list(frames.shape) != meta["shape"] or frames.dtype != np.uint8:
            return None
        return StoreSource(frames, meta)

    def get(self, path: str) -> StoreSource | None:
        """The stored grid of `path`, or None (a miss; counted)."""
        try:
            key = self.key(path)
        except VideoError:
            return None
        src = self._open(key)
        if src is None:
            self.misses += 1
            return None
        self.hits += 1
        _touch(self._paths(key)[1])
        return src

    # -- writing ----------------------------------------------------------------------------------------------
    def fill(self, path: str) -> str:
        """Store `path`'s grid: "filled", or "present" when it already was. A video that fails to decode raises
        VideoError and leaves no entry."""
        key = self.key(path)
        npy, meta_path = self._paths(key)
        with open(os.path.join(self.root, key + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the process dies
            if self._open(key) is not None:
                return "present"
            tmp = os.path.join(self.root, f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                meta = self._write_grid(path, tmp + ".npy")
                os.replace(tmp + ".npy", npy)
                with open(tmp + ".json", "w") as f:
                    json.dump(meta, f)
                _touch(tmp + ".json")
                os.replace(tmp + ".json", meta_path)
            finally:
                for leftover in (tmp + ".npy", tmp + ".json"):
                    if os.path.exists(leftover):
                        os.remove(leftover)
        self.fills += 1
        self._drop_other_versions(key)
        self.evict(keep=key)
        return "filled"

    def _write_grid(self, path: str, out: str) -> dict:
        from vital_ray.tools.video_io import resize_frames

        s = self.spec
        src = open_decoder(resolve(s.decoder), path, s.max_source_pixels, (s.min_pixels, s.max_pixels))
        n = max(1, int(math.floor(src.duration * s.fps)))  # the clip tool's grid
        mm = None
        for i in range(0, n, FILL_CHUNK):
            times = [k / s.fps for k in range(i, min(n, i + FILL_CHUNK))]
            chunk = np.stack(resize_frames(src.get_frames(times), times, s.min_pixels, s.max_pixels, False))
            if mm is None:
                mm = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(n, *chunk.shape[1:]))
            mm[i:i + len(chunk)] = chunk
        mm.flush()
        shape = list(mm.shape)
        del mm
        return {"video": os.path.realpath(path), "fps": s.fps, "duration": src.duration, "shape": shape,
                "decoder": src.name, "written": time.time()}

    def fill_async(self, path: str) -> Future:
        """Fill in this process's background thread (one video at a time); a failure leaves no entry."""
        with self._lock:
            fut = self._pending.get(path)
            if fut is None or fut.done():
                fut = self._filler.submit(self._fill_quietly, path)
                self._pending[path] = fut
            return fut

    def _fill_quietly(self, path: str) -> str:
        try:
            return self.fill(path)
        except (VideoError, ValueError) as e:
            return f"failed: {e}"

    def wait(self) -> None:
        """Until every background fill started so far has finished."""
        with self._lock:
            futs = list(self._pending.values())
        for f in futs:
            f.result()

    # -- bounds -----------------------------------------------------------------------------------------------
    def entries(self) -> list[tuple[float, int, str]]:
        """(last read, bytes, key) of every complete entry, least recently read first."""
        out = []
        for meta_path in glob.glob(os.path.join(self.root, "*.json")):
            key = os.path.basename(meta_path)[:-5]
            try:
                out.append((os.path.getmtime(meta_path), os.path.getsize(self._paths(key)[0]), key))
            except OSError:
                continue
        return sorted(out)

    def size_bytes(self) -> int:
        return sum(b for _, b, _ in self.entries())

    def remove(self, key: str) -> None:
        for p in reversed(self._paths(key)):  # the json first: the entry stops being complete at once
            try:
                os.remove(p)
            except FileNotFoundError:
                pass

    def evict(self, keep: str = "") -> list[str]:
        """Remove least recently read entries until the store fits `max_bytes` (never `keep`), and temporary
        files of crashed writers. Readers holding an evicted entry's mmap keep reading it (POSIX unlink)."""
        now = time.time()
        for tmp in glob.glob(os.path.join(self.root, ".*.tmp.*")):
            try:
                if now - os.path.getmtime(tmp) > STALE_TMP_S:
                    os.remove(tmp)
            except OSError:
                pass
        entries = self.entries()
        total, gone = sum(b for _, b, _ in entries), []
        for _, size, key in entries:
            if total <= self.max_bytes:
                break
            if key != keep:
                self.remove(key)
                total -= size
                gone.append(key)
        return gone

    def _drop_other_versions(self, key: str) -> None:
        """A changed video's older entries can never be read again (their key names the old size/mtime)."""
        prefix = key.split("-")[0]
        for meta_path in glob.glob(os.path.join(self.root, f"{prefix}-*.json")):
            other = os.path.basename(meta_path)[:-5]
            if other != key:
                self.remove(other)


def _touch(path: str) -> None:
    """Set mtime (the LRU order) from the precise clock: the kernel's file-time clock ticks only every few ms,
    and a read right after another entry's write must still sort after it."""
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now))
    except OSError:  # evicted meanwhile
        pass


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


_STORES: dict[tuple, FrameStore] = {}
_STORES_LOCK = threading.Lock()


def store_for(cfg) -> FrameStore | None:
    """The process's store for a ToolConfig (None when `tool.store_dir` is empty or the decoder is `frames`,
    VITAL's JPEG layout, itself a store)."""
    if not cfg.store_dir or cfg.decoder == "frames":
        return None
    root = os.path.abspath(os.path.expanduser(cfg.store_dir))
    spec = GridSpec(cfg.source_fps, cfg.min_pixels, cfg.max_pixels, cfg.decoder, cfg.max_source_pixels)
    with _STORES_LOCK:
        key = (root, spec, cfg.store_max_gb)
        if key not in _STORES:
            _STORES[key] = FrameStore(root, int(cfg.store_max_gb * 2**30), spec)
        return _STORES[key]
