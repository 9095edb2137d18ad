"""The endpoint's pure parts without Ray: request validation, video access rules (roots, traversal, symlinks,
bounded URL downloads from a real local HTTP server), auth, the response body, and the served tool loop with
the client prefill over the real tokenizer and the real clip tool on a real mp4."""

import asyncio
import http.server
import json
import os
import threading
import time

import pytest

from vital_ray.config import ConfigError, RolloutConfig, ServeConfig, ServeJobConfig, ToolConfig, load_config
from vital_ray.serving.errors import RequestError
from vital_ray.serving.request import check_auth, parse_body, parse_chat_request
from vital_ray.serving.videos import fetch_url, real_roots, resolve_local, resolve_video


def err(fn, *a, **k) -> RequestError:
    with pytest.raises(RequestError) as e:
        fn(*a, **k)
    return e.value


def user(*parts):
    return {"role": "user", "content": list(parts)}


VIDEO = {"type": "video_url", "video_url": {"url": "a.mp4"}}
TEXT = {"type": "text", "text": "When?"}


def test_parse_forms_and_limits():
    r = parse_chat_request({"model": "m", "messages": [user(VIDEO, TEXT)], "max_tokens": 50, "temperature": 0},
                           "m")
    assert (r.video, r.question, r.max_tokens, r.temperature, r.prefill) == ("a.mp4", "When?", 50, 0, "")
    r = parse_chat_request({"model": "m", "video": "b.mp4", "messages": [
        {"role": "system", "content": "s"}, {"role": "user", "content": "Why?"},
        {"role": "assistant", "content": "<think>"}]}, "m")
    assert (r.video, r.question, r.prefill) == ("b.mp4", "Why?", "<think>")
    cases = [({"model": "x", "messages": [user(VIDEO, TEXT)]}, 404, "model_not_found"),
             ({"messages": [user(VIDEO, TEXT)]}, 400, "missing_model"),
             ({"model": "m", "messages": []}, 400, "invalid_messages"),
             ({"model": "m", "messages": [user(TEXT)]}, 400, "missing_video"),
             ({"model": "m", "messages": [user(VIDEO, VIDEO, TEXT)]}, 400, "invalid_video"),
             ({"model": "m", "messages": [user(VIDEO)]}, 400, "invalid_messages"),
             ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, 400, "invalid_messages"),
             ({"model": "m", "messages": [user(VIDEO, {"type": "image_url"})]}, 400, "invalid_messages"),
             ({"model": "m", "messages": [user(VIDEO, {"type": "text", "text": "<|video_pad|>"})]}, 400,
              "invalid_messages"),
             ({"model": "m", "messages": [user(VIDEO, TEXT)], "max_tokens": 0}, 400, "invalid_value"),
             ({"model": "m", "messages": [user(VIDEO, TEXT)], "max_tokens": True}, 400, "invalid_value"),
             ({"model": "m", "messages": [user(VIDEO, TEXT)], "n": 2}, 400, "invalid_value"),
             ({"model": "m", "messages": [user(VIDEO, TEXT)], "stream": "yes"}, 400, "invalid_value")]
    for body, status, code in cases:
        e = err(parse_chat_request, body, "m")
        assert (e.status, e.code) == (status, code), (body, e.message)


def test_body_size_json_and_auth():
    assert err(parse_body, b"x" * 101, 100).status == 413
    assert err(parse_body, b"{bad", 100).code == "invalid_json"
    assert err(parse_body, b"\xff\xfe", 100).code == "invalid_json"
    assert err(parse_body, b'"str"', 100).code == "invalid_json"
    assert parse_body(b'{"a": 1}', 100) == {"a": 1}
    check_auth(None, None)  # no token configured: open
    check_auth("Bearer s3cret", "s3cret")
    for header in (None, "", "Bearer wrong", "Basic s3cret", "s3cret"):
        assert err(check_auth, header, "s3cret").status == 401


def test_video_roots_traversal_and_symlinks(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "v.mp4").write_bytes(b"x")
    (outside / "secret.mp4").write_bytes(b"x")
    (root / "in_link.mp4").symlink_to(root / "sub" / "v.mp4")
    (root / "out_link.mp4").symlink_to(outside / "secret.mp4")
    (root / "dir_link").symlink_to(outside)
    roots = real_roots([str(root)])
    good = os.path.realpath(root / "sub" / "v.mp4")
    assert resolve_local(str(root / "sub" / "v.mp4"), roots) == good
    assert resolve_local("sub/v.mp4", roots) == good  # relative to the first root
    assert resolve_local(f"file://{root}/sub/v.mp4", roots) == good
    assert resolve_local(str(root / "in_link.mp4"), roots) == good  # a link that stays inside is fine
    for bad in ("../outside/secret.mp4", str(root / "sub" / ".." / ".." / "outside" / "secret.mp4"),
                str(root / "out_link.mp4"), str(root / "dir_link" / "secret.mp4"), "/etc/passwd",
                str(outside / "secret.mp4"), f"file://{outside}/secret.mp4", str(tmp_path / "root2" / "x")):
        e = err(resolve_local, bad, roots)
        assert (e.status, e.code) == (403, "video_forbidden"), bad
    assert err(resolve_local, "missing.mp4", roots).status == 404
    assert err(resolve_local, "sub", roots).status == 400  # a directory
    assert err(resolve_local, "a\x00b", roots).status == 400
    assert err(resolve_local, "v.mp4", []).status == 403  # no roots configured: local paths are off
    assert resolve_video("sub/v.mp4", roots, allow_urls=False) == (good, False)
    assert resolve_video("https://h/v.mp4", roots, allow_urls=True) == ("https://h/v.mp4", True)
    e = err(resolve_video, "http://h/v.mp4", roots, allow_urls=False)  # URLs are off by default
    assert (e.status, e.code) == (403, "video_forbidden")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            self.send_response(200)
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"x" * 65536)
                self.wfile.flush()
                time.sleep(0.1)
            return
        if self.path == "/missing":
            self.send_error(404)
            return
        body = self.server.payload  # type: ignore[attr-defined]
        self.send_response(200)
        if self.path != "/nolength":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def http_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.payload = os.urandom(300_000)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_url_fetch_is_bounded(http_server, tmp_path):
    srv, base = http_server
    path = fetch_url(f"{base}/ok", str(tmp_path), 1_000_000, 10)
    assert open(path, "rb").read() == srv.payload
    e = err(fetch_url, f"{base}/ok", str(tmp_path), 100_000, 10)  # refused from Content-Length
    assert (e.status, e.code) == (413, "video_too_large")
    assert err(fetch_url, f"{base}/nolength", str(tmp_path), 100_000, 10).status == 413  # counted while reading
    t0 = time.monotonic()
    assert err(fetch_url, f"{base}/slow", str(tmp_path), 10**9, 1.0).status == 408  # total time, not per read
    assert time.monotonic() - t0 < 5
    assert err(fetch_url, f"{base}/missing", str(tmp_path), 10**6, 5).code == "video_fetch_failed"
    assert err(fetch_url, "http://127.0.0.1:1/x", str(tmp_path), 10**6, 5).code == "video_fetch_failed"
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(path)]  # failed downloads leave nothing behind


def test_serve_config_validation():
    cfg = load_config(ServeJobConfig)
    assert (cfg.serve.host, cfg.serve.allow_urls) == ("127.0.0.1", False)  # loopback, no URLs by default
    for bad in ("serve.port=0", "serve.max_turns=-1", "serve.max_request_bytes=0", "serve.tool_max_replicas=0",
                "serve.model_name=", "serve.nope=1"):
        with pytest.raises(ConfigError):
            load_config(ServeJobConfig, overrides=[bad])
    from pipelines.serve import load_serve_config

    cfg = load_serve_config("configs/serve.yaml", ["serve.port=9123"])
    assert cfg.serve.port == 9123 and cfg.serve.host == "127.0.0.1" and cfg.tool.max_frames == 8


def test_cli_serve_rejects_bad_config(capsys):
    from vital_ray.cli import main

    assert main(["serve", "serve.max_turns=-2"]) == 2
    assert "serve.max_turns" in capsys.readouterr().err
    assert main(["serve", "--model", "/nonexistent/folder", "serve.allow_urls=true"]) == 2
    assert main(["serve"]) == 2  # no allowed roots and no URLs: nothing could be served
    assert "allowed_roots is empty" in capsys.readouterr().err
    assert main(["serve", "serve.allowed_roots=[/nonexistent/videos]"]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_served_loop_with_prefilled_tool_call(tiny_model_path, synthetic):
    """run_request end to end without Ray: real tokenizer, real clip tool and global view on a real mp4; the
    model is a function that answers (the network is not the point here)."""
    from actors.tools import run_global_view, run_tool_call
    from vital_ray.config import VideoViewConfig
    from vital_ray.models import load_model_bundle
    from vital_ray.rollout.engine import GenResult
    from vital_ray.rollout.trajectory import TokenCodec
    from vital_ray.serving.loop import loop_config, run_request
    from vital_ray.serving.request import ChatRequest
    from vital_ray.serving.response import completion_body

    codec = TokenCodec(load_model_bundle(tiny_model_path).tokenizer)
    rec = synthetic[0][0]
    seen = []

    async def generate(requests, sampling):
        seen.append(requests)
        text = "<think>the clip shows it</think><answer>(3.0, 7.5)</answer>"
        ids = codec.encode(text)
        return [GenResult(r["key"], ids, [0.0] * len(ids), text, "answer") for r in requests]

    async def tool(name, args, video, duration):
        return run_tool_call(name, args, video, duration, ToolConfig(max_frames=4, max_pixels=12544))

    async def view(video, duration):
        return run_global_view(video, duration, VideoViewConfig(max_frames=4))

    call = json.dumps({"name": "get_video_clip_frame", "arguments": {"start_time": 2, "end_time": 9}})
    req = ChatRequest("m", "When?", rec.video, prefill=f"<think>look</think><tool_call>{call}</tool_call>",
                      max_tokens=900, seed=0)
    cfg = loop_config(RolloutConfig(max_tokens_per_turn=32), ServeConfig(max_tokens=1000), req)
    assert cfg.max_total_tokens == 900 and cfg.max_turns == 2
    events = []
    traj = asyncio.run(run_request(codec, req, rec.video, cfg, generate, tool, view, events.append))
    assert len(seen) == 1 and len(seen[0][0]["videos"]) == 2  # global view + the clip reach the model
    body = completion_body(traj, "m", "id1")
    msg = body["choices"][0]["message"]
    assert msg["content"] == "(3.0, 7.5)" and msg["reasoning_content"] == "look\nthe clip shows it"
    (made,) = body["vital"]["tool_calls"]
    assert made["ok"] and (made["start"], made["end"]) == (2.0, 9.0) and made["frames"] == 4
    assert [e["type"] for e in events] == ["turn", "tool_call", "turn"]
    assert body["choices"][0]["finish_reason"] == "stop" and abs(body["vital"]["duration_s"] - rec.duration) < 1
    bad = ChatRequest("m", "When?", rec.video, prefill="x " * 1000)
    assert err(asyncio.run, run_request(codec, bad, rec.video, cfg, generate, tool, view)).code == \
        "prefill_too_long"


def _ingress(cfg, tiny_model_path, model_handle, tool_handle):
    """The ingress class itself (under Serve's ASGI wrapper), built without a Serve cluster."""
    from actors.serve import Ingress

    return Ingress.func_or_class.__mro__[1](cfg, tiny_model_path, model_handle, tool_handle)


class _Remote:
    """`handle.method.remote(...)` over a local coroutine: the shape of a Serve DeploymentHandle."""

    def __init__(self, **methods):
        for name, fn in methods.items():
            setattr(self, name, type("M", (), {"remote": staticmethod(fn)})())


def test_a_request_past_its_deadline_is_504_with_a_stalled_model_standin(tiny_model_path, synthetic):
    from actors.tools import run_global_view

    rec = synthetic[0][0]
    cfg = load_config(ServeJobConfig, data={"model": {"path": tiny_model_path},
                                            "serve": {"request_timeout_s": 0.5, "model_name": "m",
                                                      "allowed_roots": [os.path.dirname(rec.video)]},
                                            "view": {"max_frames": 4, "max_pixels": 12544}})

    async def stalled_generate(requests, sampling):  # stands in for a model replica that never answers
        await asyncio.Event().wait()

    async def view(video, duration):  # the real global view, as the tool deployment runs it
        return await asyncio.to_thread(run_global_view, video, duration, cfg.view, cfg.tool)

    ing = _ingress(cfg, tiny_model_path, _Remote(generate=stalled_generate), _Remote(global_view=view))
    req = parse_chat_request({"model": "m", "messages": [user({"type": "video", "video": rec.video}, TEXT)]}, "m")
    e = err(asyncio.run, ing._run(req, rec.video))
    assert (e.status, e.code) == (504, "timeout") and "request took longer than" in e.message


def test_an_unexpected_error_is_a_500_in_the_openai_error_shape():
    from actors.serve import _internal_error

    resp = asyncio.run(_internal_error(None, KeyError("boom")))
    body = json.loads(resp.body)
    assert resp.status_code == 500 and body["error"]["type"] == "server_error"
    assert body["error"]["code"] == "internal_error" and "KeyError" in body["error"]["message"]
