"""The command line: bad configs fail at start-up with a message naming the key, before Ray starts."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "vital_ray.cli", *args], capture_output=True, text=True, timeout=120)


def test_unknown_key_fails_fast_naming_it():
    r = run("dgrpo", "--config", "configs/demo.yaml", "rollout.group_sise=8")
    assert r.returncode == 2 and "rollout.group_sise" in r.stderr and "Traceback" not in r.stderr


def test_bad_value_and_unknown_command():
    r = run("dgrpo", "algo.estimator=ppo")
    assert r.returncode == 2 and "algo.estimator" in r.stderr
    assert run("nope").returncode == 2
