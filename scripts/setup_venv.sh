#!/usr/bin/env bash
# Create the virtualenv (if missing) and install Flywheel with its dev extras into it.
# Called by the Makefile only when pyproject.toml is newer than the install stamp.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Flywheel needs Python 3.11 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1)." >&2
    echo "Run e.g. 'make run PYTHON=python3.11'." >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> Creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
fi

# torch is pinned to 2.13.0 in pyproject.toml; pip's find-links (e.g. /opt/wheels) supplies the
# CPU build where one is configured. Elsewhere, preinstall the CPU build to avoid CUDA packages:
#   $VENV/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
# FLYWHEEL_EXTRAS: the optional dependency groups (pyproject.toml); .ci/run adds llm-server.
EXTRAS="${FLYWHEEL_EXTRAS:-dev}"
echo "==> Installing Flywheel and its dependencies ($EXTRAS) into $VENV (first run takes a few minutes)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$EXTRAS]"
echo "==> Installed"
