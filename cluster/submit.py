"""`vital-ray submit`: run a driver as a Ray job on a running cluster (Ray Job SDK, token auth, our runtime env).

    vital-ray submit --address http://127.0.0.1:8265 --follow -- dgrpo --config configs/demo.yaml
    vital-ray submit -- python my_script.py            # any entrypoint
    vital-ray submit --logs <job-id>                   # print a job's logs (also: --status, --stop)

A vital-ray command (dgrpo, sft, recipe) becomes `python -m vital_ray.cli <command> ... ray.address=auto`, so the
driver joins the cluster instead of starting its own. The working dir (minus cluster/runtime_env.yaml's excludes)
is uploaded; `--follow` streams the logs and exits 0 only if the job SUCCEEDED.
Token auth (Ray >= 2.52 default): the client sends ~/.ray/auth_token (or $RAY_AUTH_TOKEN) when one exists.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time

import yaml

DEFAULT_RUNTIME_ENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runtime_env.yaml")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def default_address() -> str:
    for var in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        if os.environ.get(var, "").startswith("http"):
            return os.environ[var]
    return "http://127.0.0.1:8265"


def load_runtime_env(path: str = DEFAULT_RUNTIME_ENV, working_dir: str | None = None) -> dict:
    """The YAML runtime env; a relative working_dir is taken from `working_dir` (default: the current dir)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"runtime env file not found: {path}")
    with open(path) as f:
        env = yaml.safe_load(f) or {}
    if not isinstance(env, dict):
        raise ValueError(f"{path}: a runtime env must be a mapping, got {type(env).__name__}")
    if working_dir or env.get("working_dir") in (None, "."):
        env["working_dir"] = os.path.abspath(working_dir or env.get("working_dir") or ".")
    return env


def build_entrypoint(args: list[str]) -> str:
    """A vital-ray command -> its module run on the cluster; anything else is passed through as a shell line."""
    from vital_ray.cli import COMMANDS

    if not args:
        raise ValueError("nothing to run: give an entrypoint after --, e.g. `-- dgrpo --config configs/demo.yaml`")
    if args[0] in COMMANDS and args[0] != "submit":
        if not any(a.startswith("ray.address=") for a in args):
            args = [*args, "ray.address=auto"]
        return shlex.join(["python", "-m", "vital_ray.cli", *args])
    return shlex.join(args)


def auth_headers() -> dict[str, str]:
    """The cluster token as an explicit header, when one exists. Not via RAY_AUTH_MODE in os.environ: Ray reads
    that once per process, so flipping it here would break a later local `ray.init` in the same process."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if not token and os.path.exists(path):
        with open(path) as f:
            token = f.read().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def client(address: str):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address, headers=auth_headers())


def wait(jc, job_id: str, timeout_s: float = 3600.0, poll_s: float = 2.0) -> str:
    deadline = time.time() + timeout_s
    while True:
        status = str(jc.get_job_status(job_id).value)
        if status in TERMINAL or time.time() > deadline:
            return status
        time.sleep(poll_s)


def follow(jc, job_id: str) -> str:
    """Stream the job's logs to stdout until it ends; -> final status."""
    async def tail():
        async for chunk in jc.tail_job_logs(job_id):
            print(chunk, end="", flush=True)

    asyncio.run(tail())
    return wait(jc, job_id)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="vital-ray submit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", default=default_address(), help="dashboard URL (default: %(default)s)")
    ap.add_argument("--runtime-env", default=DEFAULT_RUNTIME_ENV, help="runtime env YAML (default: %(default)s)")
    ap.add_argument("--working-dir", default=None, help="directory to upload (default: the current dir)")
    ap.add_argument("--submission-id", default=None)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--follow", action="store_true", help="stream logs; exit 0 only if the job succeeds")
    mode.add_argument("--wait", action="store_true", help="wait for the end without streaming logs")
    mode.add_argument("--logs", metavar="JOB_ID", help="print the logs of a job and exit")
    mode.add_argument("--status", metavar="JOB_ID", help="print the status of a job and exit")
    mode.add_argument("--stop", metavar="JOB_ID", help="stop a job and exit")
    ap.add_argument("entrypoint", nargs=argparse.REMAINDER, help="-- then a vital-ray command or a shell command")
    args = ap.parse_args(argv)
    entry = args.entrypoint[1:] if args.entrypoint[:1] == ["--"] else args.entrypoint
    try:
        jc = client(args.address)
        if args.logs or args.status or args.stop:
            job_id = args.logs or args.status or args.stop
            if args.logs:
                print(jc.get_job_logs(job_id), end="")
            elif args.status:
                print(jc.get_job_status(job_id).value)
            else:
                print(f"stop requested: {jc.stop_job(job_id)}")
            return 0
        entrypoint = build_entrypoint(entry)
        env = load_runtime_env(args.runtime_env, args.working_dir)
        job_id = jc.submit_job(entrypoint=entrypoint, runtime_env=env, submission_id=args.submission_id)
    except (ValueError, FileNotFoundError, ConnectionError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"submitted {job_id}: {entrypoint}\n"
          f"logs:   vital-ray submit --address {args.address} --logs {job_id}\n"
          f"status: vital-ray submit --address {args.address} --status {job_id}", flush=True)
    if not (args.follow or args.wait):
        return 0
    status = follow(jc, job_id) if args.follow else wait(jc, job_id)
    print(f"job {job_id}: {status}", flush=True)
    return 0 if status == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
