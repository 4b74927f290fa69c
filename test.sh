#!/usr/bin/env bash
# The test command of README.md: set up (idempotent), then the whole suite.
set -euo pipefail
cd "$(dirname "$0")"
./build.sh >/dev/null
# The browser tests drive Debian's Chromium; install it when missing and we may (root).
# (fonts-wqy-microhei: CJK glyphs for the Chinese UI in screenshots)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
   && ! { command -v chromium && dpkg -s fonts-wqy-microhei; } >/dev/null 2>&1; then
  echo "test.sh: installing Debian's chromium and a CJK font for the browser tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
fi
# The layers of docs/architecture.md and the style rules: a wrong import or a lint error fails the run.
py3/bin/lint-imports --no-cache
py3/bin/ruff check --quiet .
exec py3/bin/python -m pytest -n 2 "$@"
