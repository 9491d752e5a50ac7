#!/bin/sh
# Installs sla-agent into .venv (made here, with this machine's python3) and runs the demo; arguments go
# to `sla-agent demo`. Works with a distribution's Python (Debian 12, Ubuntu 24.04) and any Python 3.11+.
set -e
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || {
    echo "sla-agent needs Python 3.11 or newer as $PY (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv 2>/dev/null || {
        rm -rf .venv
        echo "$PY cannot make a virtual environment: install python3-venv (sudo apt-get install python3-venv)" >&2
        exit 1; }
fi
# The browser extra (playwright, which drives the system's Chromium; no browser is downloaded) lets the
# demo run its browser check; where it cannot be installed the demo runs without that check and says so.
.venv/bin/python -m pip install --quiet --disable-pip-version-check '.[browser]' || {
    echo "the browser extra (playwright) did not install: the demo runs without its browser check" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check .; }
exec .venv/bin/sla-agent demo "$@"
