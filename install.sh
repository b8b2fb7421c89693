#!/usr/bin/env bash
# Install the workflow and its pinned stack into .venv (Python 3.11 or 3.12). Safe to rerun.
#   PYTHON=python3.12 bash install.sh     to choose the interpreter
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip
# torch first and exactly pinned: left to the resolver, an unpinned torch pulls a multi-GB CUDA build.
pip install "torch==2.13.0"
pip install -e ".[test]"
echo "installed into $(pwd)/.venv"
