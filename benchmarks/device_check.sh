#!/usr/bin/env bash
# The accelerator check in one command, on a machine with one GPU and nothing downloaded (run from anywhere):
#
#     bash benchmarks/device_check.sh            # GPU: installs into .venv-device, prints one table (<= 8 min)
#     bash benchmarks/device_check.sh --tiny     # the same code at CPU sizes (the CI test runs this)
#
# It makes a virtual environment that sees the system's packages (an image that already holds jax with CUDA
# downloads nothing big), installs jax[cuda13] or jax[cuda12] from the package index when jax sees no GPU (the
# one the driver supports: CUDA 13 from driver 580 on), installs lrpjax and its needs, then runs
# `benchmarks/gpu.py --all`, which prints the table last: VGG-16 224x224 heatmaps/s of epsilon,
# epsilon_gamma_box and epsilon_plus at fp32, TF32 and bf16 (batches 64, 128, 256; each with its error against
# fp32), jax gradient x input at the same batches, the `lrpjax explain` job over JPEGs (images/s and its share
# of the bare heatmap rate), one training step's images/s, the masking stage's masked forward passes/s and the
# device's peak memory. The measurements stop starting after DEVICE_CHECK_BUDGET_S seconds (default 390), so
# the table comes out inside 8 minutes with the install included.
#
# Environment: DEVICE_CHECK_PYTHON=PATH runs with that interpreter and installs nothing (the CI test's way);
# DEVICE_CHECK_VENV (default .venv-device), DEVICE_CHECK_BUDGET_S; other arguments go to benchmarks/gpu.py.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
budget=${DEVICE_CHECK_BUDGET_S:-390}

if [ -n "${DEVICE_CHECK_PYTHON:-}" ]; then
  python=$DEVICE_CHECK_PYTHON
else
  venv=${DEVICE_CHECK_VENV:-.venv-device}
  [ -x "$venv/bin/python" ] || python3 -m venv --system-site-packages "$venv"
  python=$venv/bin/python
  if [[ " $* " != *" --tiny "* ]] && ! "$python" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" \
      2>/dev/null; then
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1 | cut -d. -f1)
    cuda=cuda12
    if [ "${driver:-0}" -ge 580 ]; then cuda=cuda13; fi
    echo "device_check: jax sees no GPU; installing jax[$cuda] (driver ${driver:-unknown})" >&2
    "$python" -m pip install -q --upgrade "jax[$cuda]"
  fi
  # lrpjax and what it imports; what the image holds already is not downloaded again
  "$python" -m pip install -q -e . || "$python" -m pip install -q --no-deps -e .
fi

spent=$(( $(date +%s) - started ))
left=$(( budget - spent ))
[ "$left" -gt 30 ] || left=30
echo "device_check: $spent s installing; measuring for at most $left s more" >&2
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # peak memory is what the runs need, not the allocator's default 75 %
exec "$python" benchmarks/gpu.py --all --budget-s "$left" "$@"
