"""Ray Serve deployments: an OpenAI-compatible ingress over a model deployment and an autoscaling tool deployment.

    ingress (FastAPI)  --DeploymentHandle-->  ModelServer   (RolloutEngine: transformers CPU / vLLM GPU)
                       --DeploymentHandle-->  ToolServer    (clip tool + global view, CPU, autoscaling)

Frames travel between deployments as uint8 numpy arrays (Ray's out-of-band pickling), never base64. The request
logic is `vital_ray.serving` (pure); this module only wires it to HTTP and handles.
`serve run configs/serve.yaml` calls `app_builder(args)`; `vital-ray serve` calls `build_app(cfg)`.
(No `from __future__ import annotations` here: FastAPI reads the route signatures' types at runtime.)
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve

from actors.common import limit_threads
from vital_ray.config import ModelConfig, RolloutConfig, ServeJobConfig, ToolConfig, VideoViewConfig, load_config
from vital_ray.rollout.engine import GenResult, SamplingParams
from vital_ray.serving import request as rq
from vital_ray.serving import response as rs
from vital_ray.serving.errors import RequestError, error_body
from vital_ray.serving.loop import loop_config, run_request
from vital_ray.serving.videos import check_sources, fetch_url, real_roots, resolve_video

log = logging.getLogger("ray.serve")


@serve.deployment(max_ongoing_requests=16)
class ModelServer:
    """The rollout engine behind a handle; concurrent requests' turns are batched into one `generate`."""

    def __init__(self, model_path: str, rollout: RolloutConfig, model: ModelConfig, threads: int = 1):
        from actors.rollout import make_engine

        limit_threads(threads)
        self.engine = make_engine(model_path, rollout, model)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _batched(self, items: list[tuple[dict, SamplingParams]]) -> list[GenResult]:
        from actors.rollout import to_gen_requests

        out: list[GenResult | None] = [None] * len(items)
        groups: dict[tuple, list[int]] = {}
        for i, (_, sampling) in enumerate(items):  # one engine call per distinct sampling setting
            groups.setdefault(dataclasses.astuple(sampling), []).append(i)
        for idx in groups.values():
            reqs = to_gen_requests([items[i][0] for i in idx])
            results = await asyncio.to_thread(self.engine.generate, reqs, items[idx[0]][1])
            for i, res in zip(idx, results):
                out[i] = res
        return out

    async def generate(self, requests: list[dict], sampling: SamplingParams) -> list[GenResult]:
        return list(await asyncio.gather(*(self._batched((r, sampling)) for r in requests)))


@serve.deployment(max_ongoing_requests=4)
class ToolServer:
    """Clip tool and global view on CPU (decord); scales on ongoing requests."""

    def __init__(self, tool_cfg: ToolConfig, view_cfg: VideoViewConfig):
        limit_threads(1)
        self.tool_cfg, self.view_cfg = tool_cfg, view_cfg

    async def call(self, name: str, arguments: dict, video: str, duration: float):
        from actors.tools import run_tool_call

        return await asyncio.to_thread(run_tool_call, name, arguments, video, duration, self.tool_cfg)

    async def global_view(self, video: str, duration: float):
        from actors.tools import run_global_view

        return await asyncio.to_thread(run_global_view, video, duration, self.view_cfg, self.tool_cfg)


app = FastAPI(title="vital_ray", docs_url=None, redoc_url=None)


@app.exception_handler(RequestError)
async def _request_error(_: Request, e: RequestError):
    return JSONResponse(e.body(), status_code=e.status)


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.1})
@serve.ingress(app)
class Ingress:
    def __init__(self, cfg: ServeJobConfig, model_path: str, model_handle, tool_handle):
        from transformers import AutoTokenizer

        from vital_ray.rollout.trajectory import TokenCodec

        self.cfg, self.s = cfg, cfg.serve
        self.codec = TokenCodec(AutoTokenizer.from_pretrained(model_path))
        self.model, self.tool = model_handle, tool_handle
        self.roots = real_roots(self.s.allowed_roots)
        self.token = os.environ.get(self.s.auth_token_env) or None
        self.downloads = tempfile.mkdtemp(prefix="vital_ray_serve_")

    # -- handles as the scheduler's async functions ---------------------------------------------------------
    async def _generate(self, requests, sampling):
        return await self.model.generate.remote(requests, sampling)

    async def _tool_call(self, name, arguments, video, duration):
        try:
            return await self.tool.call.remote(name, arguments, video, duration)
        except Exception as e:  # a lost replica: the model reads an error result, the request goes on
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            return {"ok": False, "error": reason, "text": f"Error: get_video_clip_frame tool execution failed: "
                    f"{reason}"}, None

    async def _global_view(self, video, duration):
        return await self.tool.global_view.remote(video, duration)

    # -- routes ------------------------------------------------------------------------------------------
    @app.get("/healthz")
    async def healthz(self):
        return {"status": "ok", "model": self.s.model_name}

    @app.get("/v1/models")
    async def models(self, request: Request):
        rq.check_auth(request.headers.get("authorization"), self.token)
        return {"object": "list", "data": [{"id": self.s.model_name, "object": "model", "created": 0,
                                            "owned_by": "vital_ray"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request):
        rq.check_auth(request.headers.get("authorization"), self.token)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.s.max_request_bytes:
            raise RequestError(413, f"request body of {declared} bytes exceeds the limit of "
                               f"{self.s.max_request_bytes} bytes", "request_too_large")
        raw = bytearray()
        async for chunk in request.stream():  # bounded read, also without a Content-Length
            raw += chunk
            if len(raw) > self.s.max_request_bytes:
                break
        req = rq.parse_chat_request(rq.parse_body(bytes(raw), self.s.max_request_bytes), self.s.model_name)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        video = contextlib.AsyncExitStack()  # path/URL problems are 4xx before any streaming starts
        path = await video.enter_async_context(self._video(req.video))
        if req.stream:
            return StreamingResponse(self._stream(req, rid, path, video), media_type="text/event-stream")
        async with video:
            traj = await self._run(req, path)
        return rs.completion_body(traj, self.s.model_name, rid)

    @contextlib.asynccontextmanager
    async def _video(self, ref: str):
        """The request's video as a local file: a checked path, or a bounded download deleted afterwards."""
        target, remote = resolve_video(ref, self.roots, self.s.allow_urls)
        if not remote:
            yield target
            return
        path = await asyncio.to_thread(fetch_url, target, self.downloads, self.s.max_url_bytes,
                                       self.s.url_timeout_s)
        try:
            yield path
        finally:
            os.unlink(path)

    async def _run(self, req, path, on_event=None):
        cfg = loop_config(self.cfg.rollout, self.s, req)
        work = run_request(self.codec, req, path, cfg, self._generate, self._tool_call, self._global_view, on_event)
        try:
            return await asyncio.wait_for(work, self.s.request_timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(504, f"request took longer than {self.s.request_timeout_s:.0f}s",
                               "timeout") from None

    async def _stream(self, req, rid, path, video: contextlib.AsyncExitStack):
        """SSE: a role chunk, one `vital_event` chunk per model turn / tool call as it happens, then the answer.
        A video that fails to decode is found after the stream began: it arrives as an `error` event."""
        name = self.s.model_name
        events: asyncio.Queue = asyncio.Queue()

        def sse(obj) -> str:
            return f"data: {json.dumps(obj)}\n\n"

        yield sse(rs.chunk_body(rid, name, {"role": "assistant", "content": ""}))
        task = None
        try:
            async with video:
                task = asyncio.ensure_future(self._run(req, path, events.put_nowait))
                while not task.done() or not events.empty():
                    getter = asyncio.ensure_future(events.get())
                    await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                    if getter.done():
                        yield sse(rs.chunk_body(rid, name, {}, vital_event=getter.result()))
                    else:
                        getter.cancel()
                traj = task.result()
            for chunk in rs.final_chunks(traj, name, rid):
                yield sse(chunk)
        except RequestError as e:
            yield sse(e.body())
        except Exception as e:  # noqa: BLE001 - the stream must end cleanly
            log.exception("stream %s failed", rid)
            yield sse(error_body(f"internal error: {type(e).__name__}", "server_error", "internal_error"))
        finally:  # the client went away mid-stream: stop the loop instead of finishing it for nobody
            if task is not None and not task.done():
                task.cancel()
        yield "data: [DONE]\n\n"

    def __del__(self):
        shutil.rmtree(getattr(self, "downloads", ""), ignore_errors=True)


@app.exception_handler(Exception)
async def _internal_error(_: Request, e: Exception):
    log.exception("request failed")
    return JSONResponse(error_body(f"internal error: {type(e).__name__}: {str(e)[:200]}", "server_error",
                                   "internal_error"), status_code=500)


def build_app(cfg: ServeJobConfig):
    """The application graph for a validated config (builds the tiny model if `model.path` is empty)."""
    from vital_ray.models import ensure_model_folder

    s = cfg.serve
    check_sources(s.allowed_roots, s.allow_urls)
    model_path = ensure_model_folder(cfg.model)
    tool = ToolServer.options(
        ray_actor_options={"num_cpus": s.tool_num_cpus},
        autoscaling_config={"min_replicas": s.tool_min_replicas, "initial_replicas": s.tool_min_replicas,
                            "max_replicas": s.tool_max_replicas,
                            "target_ongoing_requests": s.tool_target_ongoing_requests,
                            "upscale_delay_s": s.tool_upscale_delay_s, "downscale_delay_s": s.tool_downscale_delay_s,
                            "metrics_interval_s": 1.0, "look_back_period_s": 5.0},
    ).bind(cfg.tool, cfg.view)
    r = cfg.rollout
    resources = {"num_cpus": r.num_cpus_per_worker, "num_gpus": r.num_gpus_per_worker}
    model = ModelServer.options(num_replicas=r.num_workers, ray_actor_options=resources).bind(
        model_path, r, cfg.model, max(1, int(r.num_cpus_per_worker)))
    return Ingress.bind(cfg, model_path, model, tool)


def app_builder(args: dict):
    """`serve run` entry: the app's `args` are a ServeJobConfig as a nested dict (configs/serve.yaml), or dotted
    `key.sub=value` pairs (`serve run actors.serve:app_builder model.path=/m`); bad keys fail at start-up."""
    args = dict(args or {})
    dotted = [f"{k}={v}" for k, v in args.items() if "." in k]
    return build_app(load_config(ServeJobConfig, data={k: v for k, v in args.items() if "." not in k},
                                 overrides=dotted))
