#!/usr/bin/env bash
# The test command of README.md: set up (idempotent), then the whole suite.
set -euo pipefail
cd "$(dirname "$0")"
./build.sh >/dev/null
exec py3/bin/python -m pytest "$@"
