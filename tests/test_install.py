"""The install contract: the lock satisfies pyproject's ranges, what is imported is declared, and the torch
installer stops before a CUDA download it was not asked for."""

import ast
import importlib.metadata as md
import os
import pathlib
import re
import subprocess
import sys
import tomllib
import urllib.request

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
OPTIONAL_IMPORTS = {"vllm": "the gpu extra", "torchvision": "used only where present (GPU images)",
                    "torchcodec": "an optional decoder",
                    "matplotlib": "the plots extra"}


def _project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements(extras=("dev",)):
    project = _project()
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def _lock(name):
    text = (ROOT / "requirements" / name).read_text()
    return {canonicalize_name(n): v for n, v in re.findall(r"^([A-Za-z0-9][\w.\-]*)(?:\[[^\]]*\])?==(\S+)", text, re.M)}


@pytest.mark.parametrize("lock, extras, env", [("cpu.lock", ("dev",), {"python_version": "3.11"}),
                                               ("gpu.lock", ("gpu",), {"python_version": "3.12"})])
def test_lock_pins_every_requirement_within_its_range(lock, extras, env):
    pins = _lock(lock)
    for req in _requirements(extras):
        if req.marker is not None and not req.marker.evaluate({"platform_system": "Linux",
                                                               "platform_machine": "x86_64", **env}):
            continue
        name = canonicalize_name(req.name)
        if name == "torch" and lock == "cpu.lock":
            continue  # requirements/torch.sh installs it
        assert name in pins, f"{req.name} is required by pyproject.toml but not pinned in {lock}: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{lock} pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}: run make lock"


def test_every_lock_entry_has_hashes():
    for lock in ("cpu.lock", "gpu.lock"):
        entries = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements" / lock).read_text())
        pinned = [e for e in entries if "==" in e.split("\n")[0]]
        assert pinned and all("--hash=sha256:" in e for e in pinned), lock


def _third_party_imports():
    local = {p.name for p in ROOT.iterdir() if p.is_dir()} | {p.stem for p in ROOT.glob("*.py")}
    found = {}
    for path in ROOT.glob("*/**/*.py"):
        if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local and top != "__future__":
                    where = str(path.relative_to(ROOT))
                    if found.get(top, "tests/").split("/")[0] in ("tests", "benchmarks"):
                        found[top] = where  # a library file's import decides
    return found


def test_every_import_is_a_declared_dependency():
    """The library's imports are main dependencies; tests and benchmarks may also use the dev extra."""
    main = {canonicalize_name(r.name) for r in _requirements(("gpu",))}
    dev = main | {canonicalize_name(r.name) for r in _requirements(("dev",))}
    providers = md.packages_distributions()
    undeclared = {}
    for module, where in _third_party_imports().items():
        if module in OPTIONAL_IMPORTS:
            continue
        declared = dev if where.split("/")[0] in ("tests", "benchmarks") else main
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists & declared:
            undeclared[module] = (where, sorted(dists) or "not installed")
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def _pypi_reachable():
    try:
        urllib.request.urlopen("https://pypi.org/simple/torch/", timeout=10).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64",
                    reason="PyPI's torch is a CUDA build only on Linux x86-64")
@pytest.mark.skipif(not _pypi_reachable(), reason="needs PyPI (the index whose torch is a CUDA build)")
def test_torch_installer_stops_before_a_cuda_download(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")  # PyPI only: no local CPU wheel
    r = subprocess.run(["bash", str(ROOT / "requirements" / "torch.sh"), "2.13.0", str(venv / "bin" / "python")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "is a CUDA build" in r.stderr and "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in r.stderr
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert not list(site.glob("torch*")) and not list(site.glob("nvidia*"))  # nothing was installed
