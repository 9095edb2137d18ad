"""Serve a model over HTTP: an OpenAI-compatible endpoint that answers questions about videos with the clip tool.

    vital-ray serve --model outputs/demo/final [--config configs/serve.yaml] [key.sub=value ...]
    serve run configs/serve.yaml            # the same app through Ray Serve's CLI

Listens on 127.0.0.1:8000 unless `serve.host` / `serve.port` (or --host/--port) say otherwise. Local videos
must lie under `serve.allowed_roots`; URLs are off unless `serve.allow_urls=true`; set the env var named by
`serve.auth_token_env` (VITAL_RAY_SERVE_TOKEN) to require a bearer token. --config takes a Serve config file
(its first application's `args`, plus `http_options` host/port) or a plain ServeJobConfig YAML.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from omegaconf import OmegaConf

from vital_ray.config import ConfigError, ServeJobConfig, load_config
from vital_ray.serving.videos import check_sources


def load_serve_config(path: str = "", overrides=()) -> ServeJobConfig:
    data: dict = {}
    if path:
        try:
            raw = OmegaConf.to_container(OmegaConf.load(path)) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        if "applications" in raw:  # a Serve config file: our config is the app's args
            http = raw.get("http_options") or {}
            apps = raw["applications"] or [{}]
            data = OmegaConf.to_container(OmegaConf.merge(
                {"serve": {k: http[k] for k in ("host", "port") if k in http}}, apps[0].get("args") or {}))
        else:
            data = raw
    return load_config(ServeJobConfig, data=data, overrides=list(overrides))


def start(cfg: ServeJobConfig, blocking: bool = True):
    """Start (or join) Ray, then Serve's HTTP proxy on serve.host:serve.port, then the app."""
    import ray
    from ray import serve

    from actors.serve import build_app
    from pipelines.session import worker_env_vars

    if not ray.is_initialized():
        if cfg.ray.address:
            ray.init(address=cfg.ray.address, include_dashboard=cfg.ray.include_dashboard)
        else:
            # "local": a new cluster even if `ray start` left one on this machine (join it with ray.address)
            ray.init(address="local", num_cpus=cfg.ray.num_cpus or None, include_dashboard=cfg.ray.include_dashboard,
                     runtime_env={"env_vars": worker_env_vars()})
    serve.start(http_options={"host": cfg.serve.host, "port": cfg.serve.port})
    return serve.run(build_app(cfg), name="vital_ray", route_prefix="/", blocking=blocking)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="vital-ray serve", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="HF model folder (default: model.path, else the tiny model)")
    ap.add_argument("--config", default="", help="configs/serve.yaml or a ServeJobConfig YAML")
    ap.add_argument("--host", default=None)
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("overrides", nargs="*", help="key.sub=value, e.g. serve.allowed_roots=[/data/videos]")
    args = ap.parse_args(argv)
    extra = [f"model.path={args.model}"] if args.model else []
    extra += [f"serve.host={args.host}"] if args.host else []
    extra += [f"serve.port={args.port}"] if args.port else []
    try:
        cfg = load_serve_config(args.config, list(args.overrides) + extra)
        check_sources(cfg.serve.allowed_roots, cfg.serve.allow_urls)
        if cfg.model.path:
            from vital_ray.models import ensure_model_folder

            ensure_model_folder(cfg.model)  # a bad folder fails here, before Ray starts
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import ray
    from ray import serve

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop like Ctrl-C: shut Serve and Ray down
    try:
        start(cfg, blocking=False)
        print(f"vital_ray serving {cfg.serve.model_name!r} at http://{cfg.serve.host}:{cfg.serve.port}"
              "/v1/chat/completions (Ctrl-C stops)", flush=True)
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
