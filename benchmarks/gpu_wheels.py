"""What to carry to an offline GPU machine: the wheels of requirements/gpu.lock that its image lacks at the
locked version. Prints them (largest first, with sizes) and, with --download, fetches them hash-checked.

    .venv/bin/python benchmarks/gpu_wheels.py [--image benchmarks/results/h200_image_freeze.txt]
        [--skip flashinfer-cubin,...] [--download .whl]

`--image` is the machine's `pip list --format=freeze`; `--skip` leaves out packages the measured code path never
imports (their absence then shows in `pip check` there, by name).
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lock", default="requirements/gpu.lock")
    ap.add_argument("--image", default="benchmarks/results/h200_image_freeze.txt")
    ap.add_argument("--skip", default="", help="comma-separated package names not to carry")
    ap.add_argument("--download", metavar="DIR", help="pip download the wheels (hash-checked) into DIR")
    args = ap.parse_args()
    lock, image = lock_entries(args.lock), image_versions(args.image)
    skip = {canonical(s) for s in args.skip.split(",") if s}
    if unknown := skip - lock.keys():
        ap.error(f"--skip names packages not in {args.lock}: {sorted(unknown)}")
    carry = {n: e for n, e in lock.items() if image.get(n) != e[0] and n not in skip}
    print(f"{len(lock)} locked, {len(lock) - len(carry) - len(skip & lock.keys())} in the image at the locked "
          f"version, {len(skip)} skipped, {len(carry)} to carry")
    for name in sorted(carry):
        print(f"  {name}=={carry[name][0]}" + (f"  (image: {image[name]})" if name in image else ""))
    if args.download:
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as req:
            req.write("\n".join(e[1] for e in carry.values()) + "\n")
            req.flush()
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
                   "--python-version", "3.12", "--implementation", "cp", "-d", args.download, "-r", req.name]
            for p in PLATFORMS:
                cmd += ["--platform", p]
            return subprocess.call(cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
