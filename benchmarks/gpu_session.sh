#!/usr/bin/env bash
# The lent GPU machine's side of a benchmark session (offline, torch 2.11+cu130 image; see README "GPU").
# Run from the checkout root there (the code travels as the working tree), small wheels in .whl, and big files
# split into .gpu/p<N>/ parts carried over successive calls to one warm machine:
#   bash benchmarks/gpu_session.sh <stage>...
# Stages: setup | part | extra | vllm | ray | test_cuda | learner | hf | vllm_test | vllm_step | multi
#   wheels | lock: requirements/gpu.lock itself. Here: benchmarks/gpu_wheels.py --write .gpub/carried.txt
#   --download DIR, wheels over 58 MB split into parts, packed into .gpub/bNN/ folders of <= 60 MiB; each call
#   carries one folder (stage `wheels` keeps it); the last runs `lock`: parts joined, a venv over the image's
#   packages, the carried lock entries installed hash-checked and offline, vital_ray on top, then checked.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # never NVLink multicast
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 HF_HUB_OFFLINE=1
export VLLM_USE_FLASHINFER_SAMPLER=0 RAY_USAGE_STATS_ENABLED=0 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
ROOT=$PWD
SRC=${SRC:-$ROOT}
SITE=/tmp/site
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/parts "$SITE"
export PYTHONPATH=$SITE:$SRC
RES=$OUT

log() { echo "[$(date -u +%H:%M:%S)] $*"; }

for stage in "$@"; do
  case $stage in
  setup)  # small wheels (pure python + a few binaries) into /tmp/site
    log setup
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE .whl/*.whl 2>&1 | tail -3
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count(), 'transformers', transformers.__version__)"
    ;;
  part)  # keep this call's parts
    for d in .gpu/p*/; do [ -d "$d" ] && cp -f "$d"* /tmp/parts/ 2>/dev/null; done
    ls -la /tmp/parts
    ;;
  vllm)  # join the parts of the stripped vLLM tree (fa2 kernels, Rust frontend, sm100 headers removed)
    log vllm install
    cat /tmp/parts/vllm.part.* > /tmp/vllm.tar.xz && sha256sum /tmp/vllm.tar.xz && tar -xJf /tmp/vllm.tar.xz -C $SITE && rm /tmp/vllm.tar.xz
    python3 -c "import vllm, vllm.entrypoints.llm; print('vllm', vllm.__version__)" 2>&1 | tail -5
    ;;
  extra)  # wheels carried among the parts (openai 3.x's httpx2/httpcore2)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE /tmp/parts/*.whl 2>&1 | tail -3
    python3 -c "import vllm, vllm.entrypoints.llm; print('vllm', vllm.__version__)" 2>&1 | tail -5
    ;;
  ray)
    log ray install
    cat /tmp/parts/ray.part.* > /tmp/ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl && sha256sum /tmp/ray-*.whl
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $SITE /tmp/ray-*.whl 2>&1 | tail -3
    python3 -c "import ray; print('ray', ray.__version__)" 2>&1 | tail -3
    ;;
  test_cuda)  # the learner options and the NCCL broadcast path on real GPUs
    log test_cuda
    (cd $SRC && timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_gpu_cuda.py 2>&1 | tail -15)
    ;;
  learner)  # learner MFU, variants side by side, one profiled
    log learner
    timeout ${LEARNER_TIMEOUT:-420} python3 $SRC/benchmarks/learner_mfu.py --preset 3b --samples ${LEARNER_SAMPLES:-16} --steps 1 \
      --variants ${LEARNER_VARIANTS:-base,compile,compile+no_ac} --profile ${LEARNER_PROFILE:-compile} \
      --out $RES/learner_mfu.json > $RES/learner.log 2>&1; grep -v -i warn $RES/learner.log | tail -90
    ;;
  hf)  # issue 8 with the transformers backend on the GPU
    log hf step
    python3 $SRC/benchmarks/gpu_step.py --preset 3b --backend hf --trajs 32 --gen 128 --out $RES/gpu_step_hf.json 2>&1 | grep -v Warning | tail -45
    ;;
  vllm_test)
    log vllm tests
    (cd $SRC && timeout 120 python3 -m pytest -q -x -p no:cacheprovider tests/test_vllm_gpu.py 2>&1 | tail -25)
    ;;
  vllm_step)
    log vllm step
    timeout ${VLLM_STEP_TIMEOUT:-560} python3 $SRC/benchmarks/gpu_step.py --preset 3b --backend vllm --trajs 64 --gen 256 ${VLLM_STEP_ARGS:-} --out $RES/gpu_step_vllm.json > $RES/vllm_step.log 2>&1; grep -v Warning $RES/vllm_step.log | tail -45
    ;;
  multi)  # issue 10: pools on separate GPUs, NCCL vs object-store sync, learner scaling
    log multi
    B=${MULTI_BACKEND:-vllm}
    timeout 240 python3 $SRC/benchmarks/multi_gpu.py --preset 3b --backend $B --trajs 16 --gen 64 --out $RES/multi_gpu.json > $RES/multi.log 2>&1; grep -v -i warn $RES/multi.log | grep -v "^INFO\|^\s*$" | tail -40
    ;;
  wheels)  # keep this call's folder of carried wheels
    mkdir -p /tmp/wh && for d in .gpub/b*/; do [ -d "$d" ] && cp -f "$d"* /tmp/wh/; done
    ls /tmp/wh | wc -l; du -sh /tmp/wh
    ;;
  lock)  # install requirements/gpu.lock's carried entries offline into a venv over the image, then check
    log lock install
    (cd /tmp/wh && for p in *.part.00; do [ -e "$p" ] || continue; b=${p%.part.00}; cat "$b".part.* > "$b" && rm "$b".part.*; done)
    # the image's python is itself a venv: --system-site-packages would skip its packages, a .pth adds them after ours
    python3 -m venv /tmp/gv
    python3 -c "import site; print(site.getsitepackages()[0])" > /tmp/gv/lib/python3.12/site-packages/image.pth
    /tmp/gv/bin/pip install -q --no-index --no-deps --require-hashes --find-links /tmp/wh -r /tmp/wh/carried.txt > $RES/pip_install.txt 2>&1
    echo "pip install: rc $?"; tail -25 $RES/pip_install.txt
    /tmp/gv/bin/pip install -q --no-index --no-deps --no-build-isolation -e $SRC 2>&1 | tail -25
    /tmp/gv/bin/pip check > $RES/pip_check.txt 2>&1; echo "pip check: $(wc -l < $RES/pip_check.txt) lines"; head -30 $RES/pip_check.txt
    /tmp/gv/bin/python $SRC/benchmarks/gpu_wheels.py --check-closure 2>&1 | tail -30
    /tmp/gv/bin/python -c "import vllm, ray, transformers, torch, vital_ray; print('imports ok: vllm', vllm.__version__, 'ray', ray.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)" 2>&1 | tail -3
    ;;
  *) echo "unknown stage $stage"; exit 2;;
  esac
done
log done
