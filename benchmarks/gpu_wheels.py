"""What to carry to an offline GPU machine: the wheels of requirements/gpu.lock that its image lacks at the
locked version. Prints them (largest first, with sizes) and, with --download, fetches them hash-checked.

    .venv/bin/python benchmarks/gpu_wheels.py [--image benchmarks/results/h200_image_freeze.txt]
        [--skip flashinfer-cubin,...] [--download .whl] [--write carried.txt]

`--image` is the machine's `pip list --format=freeze`; `--skip` leaves out packages the measured code path never
imports (their absence then shows in `pip check` there, by name). `--write` saves the carried entries, hashes
included, as a requirements file for `pip install --no-index --require-hashes` on the machine.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile

PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_18_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux_2_12_x86_64",
             "manylinux1_x86_64", "manylinux_2_5_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def lock_entries(path: str) -> dict[str, tuple[str, str]]:
    """{name: (version, the entry's text with its hashes)} from a `uv pip compile --generate-hashes` lock."""
    text = open(path).read()
    out = {}
    for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9_.\-\[\],]*)==(\S+)((?: \\\n\s+--hash=\S+)+)", text, re.M):
        out[canonical(m.group(1))] = (m.group(2), m.group(0))
    return out


def image_versions(path: str) -> dict[str, str]:
    pins = (line.strip().split("==", 1) for line in open(path) if "==" in line and not line.startswith("#"))
    return {canonical(n): v.split("+")[0] for n, v in pins}


def check_closure(lock: dict[str, tuple[str, str]]) -> int:
    import importlib.metadata as md

    from packaging.requirements import Requirement

    installed = {}
    for d in md.distributions():  # in sys.path order: the first one found is the one imported
        installed.setdefault(canonical(d.metadata["Name"]), d)
    off, unmet = [], []
    for name, (version, _) in sorted(lock.items()):
        dist = installed.get(name)
        if dist is None or dist.version.split("+")[0] != version:
            off.append(f"{name}=={version}: " + ("not installed" if dist is None else f"found {dist.version}"))
            continue
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            have = installed.get(canonical(req.name))
            if have is None or not req.specifier.contains(have.version, prereleases=True):
                unmet.append(f"{name} requires {text.split(';')[0]}: " + ("missing" if have is None else have.version))
    print(f"{len(lock) - len(off)} of {len(lock)} locked packages installed at the locked version")
    for line in off + unmet:
        print("  " + line)
    return 1 if off or unmet else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lock", default="requirements/gpu.lock")
    ap.add_argument("--image", default="benchmarks/results/h200_image_freeze.txt")
    ap.add_argument("--skip", default="", help="comma-separated package names not to carry")
    ap.add_argument("--download", metavar="DIR", help="pip download the wheels (hash-checked) into DIR")
    ap.add_argument("--write", metavar="FILE", help="write the carried lock entries (with hashes) to FILE")
    ap.add_argument("--check-closure", action="store_true",
                    help="on the machine: is every locked package installed at its locked version, and is every "
                         "requirement of those packages met? (pip check, restricted to the lock)")
    args = ap.parse_args()
    lock = lock_entries(args.lock)
    if args.check_closure:
        return check_closure(lock)
    image = image_versions(args.image)
    skip = {canonical(s) for s in args.skip.split(",") if s}
    if unknown := skip - lock.keys():
        ap.error(f"--skip names packages not in {args.lock}: {sorted(unknown)}")
    carry = {n: e for n, e in lock.items() if image.get(n) != e[0] and n not in skip}
    print(f"{len(lock)} locked, {len(lock) - len(carry) - len(skip & lock.keys())} in the image at the locked "
          f"version, {len(skip)} skipped, {len(carry)} to carry")
    for name in sorted(carry):
        print(f"  {name}=={carry[name][0]}" + (f"  (image: {image[name]})" if name in image else ""))
    entries = "\n".join(e[1] for e in carry.values()) + "\n"
    if args.write:
        with open(args.write, "w") as f:
            f.write(entries)
    if args.download:
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as req:
            req.write(entries)
            req.flush()
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
                   "--python-version", "3.12", "--implementation", "cp", "-d", args.download, "-r", req.name]
            for p in PLATFORMS:
                cmd += ["--platform", p]
            return subprocess.call(cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
