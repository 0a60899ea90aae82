#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored) the wheels a GPU image with JAX and PyTorch lacks, at the
# versions of requirements.lock, for CPython 3.12 on x86-64 Linux: what benchmarks/gpu_suite.sh
# installs there, so that the GPU machine needs no package index. The image's own packages (JAX,
# flax, optax, orbax, numpy, OpenCV, torch, protobuf, etils, absl, ...) are not downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
missing=(grain array-record portpicker tensorflow-datasets dm-tree immutabledict promise
         simple-parsing docstring-parser tensorflow-metadata googleapis-common-protos termcolor
         toml ml-collections tensorboardx importlib-resources)
mkdir -p .whl
rm -f .whl/*.whl
for name in "${missing[@]}"; do
  version=$(grep -i -m1 "^${name}==" requirements.lock | cut -d= -f3)
  if [[ -z "$version" ]]; then
    echo "gpu_wheels: $name is not in requirements.lock" >&2
    exit 1
  fi
  if ! "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
      -d .whl "$name==$version" 2> /dev/null; then
    # No wheel on the index (promise is a source distribution): build a pure-Python one.
    "$python" -m pip wheel -q --no-deps -w .whl "$name==$version"
  fi
done
ls -l .whl
du -ch .whl/*.whl | tail -1
