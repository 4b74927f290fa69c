#!/usr/bin/env bash
# Set up the venv in py3/ (only when requirements changed) and compile every spec into build/.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x py3/bin/python ]; then
  "$PYTHON" -m venv py3
fi
stamp=py3/.installed
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "build.sh: installing pinned dependencies into py3/"
  py3/bin/pip install -q --disable-pip-version-check -r requirements.txt
  py3/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi
py3/bin/pipeline-app build "$@"
