#!/usr/bin/env bash
# Runs the whole test suite once per Keras backend; extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")"
export FER2013_DIR="${FER2013_DIR:-$(cd .. && pwd)/shared/fer2013}"
status=0
for backend in ${BACKENDS:-jax tensorflow torch}; do
  echo "=== KERAS_BACKEND=$backend ==="
  KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider "$@" || status=1
done
exit $status
