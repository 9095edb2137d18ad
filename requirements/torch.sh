#!/usr/bin/env bash
# torch.sh VERSION PYTHON: install torch==VERSION into PYTHON's environment, a CPU build unless told otherwise.
# PyPI's Linux x86-64 torch is a CUDA build of several GB (it pulls nvidia-* packages); the CPU build lives on
# a separate index. This decides from the candidate's metadata before anything large is downloaded:
#   TORCH_INDEX_URL=<index>  take torch from that index (https://download.pytorch.org/whl/cpu for the CPU build)
#   ALLOW_CUDA_TORCH=1       accept a CUDA build from the configured indexes
# Otherwise the configured indexes must offer a CPU build (a `+cpu` wheel in pip's find-links, macOS, ARM).
set -euo pipefail
version=$1
py=$2

have=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
if [[ "${have%%+*}" == "$version" ]]; then
  exit 0
fi
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
  echo "torch==$version from $TORCH_INDEX_URL"
  exec "$py" -m pip install -q --no-deps "torch==$version" --index-url "$TORCH_INDEX_URL"
fi

report=$(mktemp)
trap 'rm -f "$report"' EXIT
"$py" -m pip install -q --dry-run --no-deps --ignore-installed --report "$report" "torch==$version"
verdict=$("$py" - "$report" <<'PY'
import json, sys
from pip._vendor.packaging.requirements import Requirement

item = json.load(open(sys.argv[1]))["install"][0]
cuda = sorted({Requirement(r).name for r in item["metadata"].get("requires_dist", [])
               if r.startswith("nvidia-") and (Requirement(r).marker is None or Requirement(r).marker.evaluate())})
print("cuda" if cuda else "cpu", item["metadata"]["version"], item["download_info"]["url"].rsplit("/", 1)[-1])
PY
)
read -r kind got file <<<"$verdict"
if [[ "$kind" == cuda && "${ALLOW_CUDA_TORCH:-0}" != 1 ]]; then
  cat >&2 <<MSG
requirements/torch.sh: the torch==$version your package indexes offer ($file) is a CUDA build: it would
download several GB of nvidia-* packages. Nothing was installed. Choose one:
  make install TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu   # the CPU build (what the tests need)
  make install ALLOW_CUDA_TORCH=1                                     # the CUDA build (GPU machines: see README)
MSG
  exit 3
fi
echo "torch==$got ($kind build: $file)"
"$py" -m pip install -q --no-deps "torch==$got"  # its dependencies come from the lock
