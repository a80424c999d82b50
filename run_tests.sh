#!/usr/bin/env bash
# Runs the whole test suite once per Keras backend; extra arguments go to pytest.
# Each pass spreads the test files over TEST_WORKERS processes (pytest-xdist;
# default 2, this project's CPU count): most tests wait on imports and
# subprocesses, so two workers take a third off the wall time on 2 cores.
# TEST_WORKERS=0 runs in one process.
set -uo pipefail
cd "$(dirname "$0")"
export FER2013_DIR="${FER2013_DIR:-$(cd .. && pwd)/shared/fer2013}"
workers="${TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != "0" ]; then
  parallel=(-n "$workers" --dist loadfile)
fi
status=0
for backend in ${BACKENDS:-jax tensorflow torch}; do
  echo "=== KERAS_BACKEND=$backend ==="
  KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider "${parallel[@]}" "$@" || status=1
done
exit $status
