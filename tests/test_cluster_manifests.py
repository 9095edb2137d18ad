"""cluster/ manifests: the launcher YAML passes Ray's own schema, the KubeRay RayCluster/RayJob carry the keys the
operator needs (autoscaler on, a GPU group, a CPU tool group labelled as ToolPool expects), the RayJob's
entrypoint is a valid vital_ray command line, and the runtime env keeps the uploaded working dir small."""

import os
import shlex
import zipfile
from pathlib import Path

import pytest
import yaml

from cluster.submit import load_runtime_env
from vital_ray.config import ToolPoolConfig
from vital_ray.tools.scaling import NODE_KIND_LABEL

ROOT = Path(__file__).resolve().parent.parent
TOOL_LABEL = ToolPoolConfig().tool_node_label


def load(rel: str) -> dict:
    with open(ROOT / rel) as f:
        return yaml.safe_load(f)


def test_launcher_passes_ray_schema_with_gpu_and_tool_types():
    from ray.autoscaler._private.util import validate_config
    from ray.autoscaler.sdk import fillout_defaults

    cfg = load("cluster/launcher.yaml")
    validate_config(fillout_defaults(cfg))  # what `ray up` does: Ray's ray-schema.json, unknown fields rejected
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) > 0]
    tool = [t for t in types.values() if t.get("labels", {}).get(NODE_KIND_LABEL) == TOOL_LABEL]
    assert len(gpu) == 1 and len(tool) == 1 and tool[0]["resources"].get("GPU", 0) == 0
    for t in (gpu[0], tool[0]):
        assert 0 <= t["min_workers"] < t["max_workers"] <= cfg["max_workers"]  # autoscaled
    assert any("RAY_enable_autoscaler_v2=1" in c for c in cfg["head_start_ray_commands"])  # label-aware scaling


def _check_cluster_spec(spec: dict) -> None:
    assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["version"] == "v2"
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert head["template"]["spec"]["containers"][0]["image"]
    assert "metrics-export-port" in head["rayStartParams"]
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    for g in groups.values():
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] and g["maxReplicas"] > 0
        assert g["template"]["spec"]["containers"][0]["image"]
    gpu = [g for g in groups.values()
           if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]]
    tool = [g for g in groups.values() if g.get("labels", {}).get(NODE_KIND_LABEL) == TOOL_LABEL]
    assert len(gpu) == 1 and len(tool) == 1 and gpu[0] is not tool[0]
    assert "nvidia.com/gpu" not in tool[0]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert "vital_ray_tool_node" in tool[0]["resources"]


def test_kuberay_raycluster():
    doc = load("cluster/kuberay/raycluster.yaml")
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster" and doc["metadata"]["name"]
    _check_cluster_spec(doc["spec"])


def test_kuberay_rayjob_matches_the_cluster_and_its_entrypoint_parses():
    from pipelines.dgrpo import parse_cli

    job = load("cluster/kuberay/rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob" and job["metadata"]["name"]
    spec = job["spec"]
    assert spec["rayClusterSpec"] == load("cluster/kuberay/raycluster.yaml")["spec"]  # one cluster definition
    assert spec["shutdownAfterJobFinishes"] is True
    assert yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"] == load("cluster/runtime_env.yaml")["env_vars"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:4] == ["python", "-m", "vital_ray.cli", "dgrpo"]
    args = [a.replace("/app/", f"{ROOT}/") for a in argv[4:]]  # the image has the repo at /app
    cfg, path, _ = parse_cli(args)
    assert os.path.exists(path) and cfg.ray.address == "auto"


def test_runtime_env_keeps_the_working_dir_small(tmp_path):
    """Package the working dir exactly as a job submission does (Ray's packager, our excludes), with a fake
    venv, outputs and wandb dir present: none of them may be uploaded."""
    from ray._private.runtime_env.packaging import create_package

    work = tmp_path / "repo"
    for rel in ("vital_ray/x.py", "configs/demo.yaml", ".venv/lib/big.so", "outputs/demo/ckpt.bin",
                "wandb/run/file", ".git/objects/pack", "vital_ray/__pycache__/x.pyc", "data/video.mp4"):
        p = work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * (1 << 20 if "." in rel.split("/")[0] or rel.endswith((".bin", ".mp4", ".so")) else 10))
    env = load_runtime_env(working_dir=str(work))
    pkg = tmp_path / "pkg.zip"
    create_package(env["working_dir"], pkg, include_gitignore=True, excludes=env["excludes"])
    names = set(zipfile.ZipFile(pkg).namelist())
    assert {"vital_ray/x.py", "configs/demo.yaml"} <= names
    assert not [n for n in names if n.startswith((".venv", "outputs", "wandb", ".git/")) or n.endswith((".pyc", ".mp4"))]


@pytest.mark.parametrize("rel", ["cluster/launcher.yaml", "cluster/kuberay/raycluster.yaml",
                                 "cluster/kuberay/rayjob.yaml", "cluster/runtime_env.yaml"])
def test_no_tabs_and_parses(rel):
    text = (ROOT / rel).read_text()
    assert "\t" not in text and yaml.safe_load(text)


def test_grafana_dashboard_covers_exactly_the_exported_metrics():
    import json
    import re

    from vital_ray.telemetry import PHASES, Telemetry

    dash = json.loads((ROOT / "cluster/grafana_dashboard.json").read_text())
    assert dash["title"] and dash["uid"] and dash["schemaVersion"] >= 30
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"ray_vital_ray_\w+", e)}
    exported = {f"ray_{m._name}" for m in Telemetry("grafana-test").metrics()}  # Ray prefixes `ray_`
    assert used == exported, (used ^ exported)
    assert {"rollout", "tools", "reward", "train", "sync"} <= set(PHASES)
