"""Which videos a request may read: local files under the allowed roots, or (opt-in) bounded http(s) downloads.

Paths are resolved with `realpath` *before* the root check, so `..` segments and symlinks that lead outside a
root are refused (403) without revealing whether the target exists.
"""

from __future__ import annotations

import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from vital_ray.serving.errors import RequestError

_CHUNK = 1 << 16


def real_roots(allowed_roots: list[str]) -> list[str]:
    return [os.path.realpath(os.path.expanduser(r)) for r in allowed_roots]


def check_sources(allowed_roots: list[str], allow_urls: bool) -> None:
    """Start-up check: every root is a directory, and some video source is enabled."""
    from vital_ray.config import ConfigError

    if not allowed_roots and not allow_urls:
        raise ConfigError("serve.allowed_roots is empty and serve.allow_urls is false: no video could be served "
                          "(e.g. serve.allowed_roots=[/data/videos])")
    missing = [r for r, real in zip(allowed_roots, real_roots(allowed_roots)) if not os.path.isdir(real)]
    if missing:
        raise ConfigError(f"serve.allowed_roots: not a directory: {missing}")


def is_url(ref: str) -> bool:
    return urllib.parse.urlsplit(ref).scheme.lower() in ("http", "https")


def resolve_video(ref: str, roots: list[str], allow_urls: bool) -> tuple[str, bool]:
    """-> (real local path, False) or (URL to download, True); refused references raise a RequestError."""
    if is_url(ref):
        if not allow_urls:
            raise RequestError(403, "video URLs are disabled on this server (serve.allow_urls=false)",
                               "video_forbidden", "video")
        return ref, True
    return resolve_local(ref, roots), False


def resolve_local(ref: str, roots: list[str]) -> str:
    """A client path (absolute, relative to the first root, or file://) -> its real path under a root."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(ref).path) if ref.startswith("file://") else ref
    if not roots:
        raise RequestError(403, "local video paths are disabled on this server (serve.allowed_roots is empty)",
                           "video_forbidden", "video")
    if not path or "\x00" in path:
        raise RequestError(400, "video path is empty or contains a NUL byte", "invalid_video", "video")
    if urllib.parse.urlsplit(path).scheme and not os.path.isabs(path):
        raise RequestError(400, f"unsupported video reference {ref[:100]!r} (a path, file:// or http(s) URL)",
                           "invalid_video", "video")
    real = os.path.realpath(path if os.path.isabs(path) else os.path.join(roots[0], path))
    if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        raise RequestError(403, "video path is outside the allowed roots", "video_forbidden", "video")
    if not os.path.exists(real):
        raise RequestError(404, f"video not found: {ref[:200]}", "video_not_found", "video")
    if not os.path.isfile(real):
        raise RequestError(400, f"video is not a regular file: {ref[:200]}", "invalid_video", "video")
    return real


def fetch_url(url: str, dest_dir: str, max_bytes: int, timeout_s: float) -> str:
    """Download to a new file in `dest_dir`; refuses bodies over `max_bytes` (413) and slower than `timeout_s`
    in total (408). Redirects are followed only to http(s) (urllib's rule)."""
    deadline = time.monotonic() + timeout_s
    req = urllib.request.Request(url, headers={"User-Agent": "vital-ray-serve"})
    fd, path = tempfile.mkstemp(suffix=".video", dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(req, timeout=timeout_s) as resp:
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise RequestError(413, f"video URL body of {declared} bytes exceeds the limit of {max_bytes}",
                                   "video_too_large", "video")
            size = 0
            while chunk := resp.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise RequestError(413, f"video URL body exceeds the limit of {max_bytes} bytes",
                                       "video_too_large", "video")
                if time.monotonic() > deadline:
                    raise RequestError(408, f"video URL download took longer than {timeout_s:.0f}s",
                                       "video_fetch_timeout", "video")
                out.write(chunk)
        return path
    except RequestError:
        os.unlink(path)
        raise
    except (urllib.error.URLError, OSError, ValueError) as e:  # DNS, refused, HTTP 4xx/5xx, socket timeout
        os.unlink(path)
        reason = getattr(e, "reason", None) or e
        raise RequestError(400, f"could not fetch the video URL: {reason}", "video_fetch_failed", "video") from None
