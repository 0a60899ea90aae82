#!/usr/bin/env bash
# The GPU suite on a GPU machine, in one command of under 10 minutes (issue 20;
# benchmarks/gpu_suite.py says what it measures):
#
#   bash benchmarks/gpu_wheels.sh     # on a machine with the package index: what the image lacks
#   bash benchmarks/gpu_suite.sh OUT  # on the GPU machine (it may be offline), .whl/ copied along
#
# An image with JAX, flax, optax, orbax, OpenCV, torch and torchvision is assumed; what it lacks
# comes as wheels in .whl/ and is installed into /tmp/site (nothing on the image is replaced).
# Then the suite runs under its deadline (default 540 s) and writes OUT/results.{json,md}.
set -euo pipefail
out=${1:?usage: bash benchmarks/gpu_suite.sh OUT [gpu_suite.py arguments]}
shift
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if compgen -G '.whl/*.whl' > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
mkdir -p "$out"
"$python" benchmarks/gpu_suite.py --out "$out" --deadline_s "${DEADLINE_S:-540}" "$@" 2>&1 \
  | tee "$out/suite.log"
