#!/usr/bin/env bash
# Install the optional `fix` extra (QuickFIX) from a local wheel cache, building the wheel
# once when the cache lacks it (QuickFIX compiles from source: about 8 minutes on 2 cores).
# The cache lives outside the checkout (default ~/.cache/alphafactory-wheels), so CI runs
# on the same machine reuse it. Usage: .ci/fix-wheel.sh [python]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
WHEELS=${ALPHAFACTORY_WHEEL_CACHE:-$HOME/.cache/alphafactory-wheels}
SPEC='quickfix>=1.16,<1.17'  # keep in step with the `fix` extra in pyproject.toml
if "$PY" -c 'import quickfix' 2>/dev/null; then
  exit 0
fi
mkdir -p "$WHEELS"
if ! compgen -G "$WHEELS/quickfix-*.whl" >/dev/null; then
  echo "fix-wheel: building $SPEC into $WHEELS (once; ~8 min)"
  start=$(date +%s)
  "$PY" -m pip wheel --quiet --no-deps "$SPEC" -w "$WHEELS"
  echo "fix-wheel: built in $(( $(date +%s) - start ))s"
fi
"$PY" -m pip install --quiet --no-index --find-links "$WHEELS" "$SPEC"
"$PY" -c 'import quickfix' && echo "fix-wheel: quickfix installed from $WHEELS"
