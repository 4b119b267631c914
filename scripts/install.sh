#!/usr/bin/env bash
# Install what aiida-nanohetero needs on Debian (run as root, or with sudo available):
# Debian's CP2K with OpenBLAS and graphviz, then a virtual environment in .venv with the package and its
# test tools. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
missing=()
for package in cp2k libopenblas0-pthread graphviz; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)
command -v gcc >/dev/null || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtual environment $VENV"
    python3 -m venv "$VENV"
fi
stamp="$VENV/.nanohetero-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> pip install -e .[dev] (the first time this compiles one dependency and takes a few minutes)"
    log="$VENV/pip-install.log"
    if ! { "$VENV/bin/python" -m pip install -q --upgrade pip "setuptools>=69" wheel \
           && "$VENV/bin/python" -m pip install -q -e '.[dev]'; } >"$log" 2>&1; then
        cat "$log"
        echo "pip install failed (log above, also in $log)" >&2
        exit 1
    fi
    touch "$stamp"
fi
echo "==> installed: $("$VENV/bin/nanohetero" --version), $(cp2k.psmp --version | grep 'CP2K version' | sed 's/^ *//')"
