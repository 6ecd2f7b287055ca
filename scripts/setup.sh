#!/usr/bin/env bash
# Install everything sde needs into ignored folders of this checkout, idempotently:
#   .venv/   Python 3.11 virtual environment from requirements.lock (hash-checked)
#   .build/  tools built from source (OPA from its Go module), caches
# A second run with an unchanged lock file does nothing but check stamps.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

PYTHON="${PYTHON:-python3.11}"
UV_VERSION="0.13.8"
OPA_VERSION="v1.22.2"
mkdir -p .build

say() { printf '[setup] %s\n' "$*" >&2; }

# --- Python -----------------------------------------------------------------
stamp=".venv/.sde-lock-$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || ! (cd / && "$root/.venv/bin/python" -c "import sde.cli") 2>/dev/null; then
    if [ ! -x .venv/bin/python ]; then
        command -v "$PYTHON" >/dev/null || { say "needs $PYTHON on PATH"; exit 1; }
        say "creating .venv with $PYTHON"
        "$PYTHON" -m venv .venv
    fi
    if ! .venv/bin/python -m uv --version 2>/dev/null | grep -q "$UV_VERSION"; then
        say "installing uv $UV_VERSION"
        .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    fi
    say "installing locked Python packages"
    .venv/bin/python -m uv pip sync --quiet --python .venv/bin/python --require-hashes requirements.lock
    .venv/bin/python -m uv pip install --quiet --python .venv/bin/python --no-deps --config-settings editable_mode=compat -e .
    # uv pip sync removes uv itself (it is not in the lock): put it back for the next run.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    rm -f .venv/.sde-lock-*
    touch "$stamp"
fi

# --- OPA (only when asked: the test suite needs it, the demo does not) -------
if [ "${SDE_SETUP_OPA:-0}" = "1" ]; then
    if ! .build/bin/opa version 2>/dev/null | grep -q "${OPA_VERSION#v}"; then
        command -v go >/dev/null || { say "needs Go to build OPA"; exit 1; }
        say "building OPA $OPA_VERSION from its Go module (a few minutes, once)"
        GOBIN="$root/.build/bin" GOFLAGS=-mod=mod go install "github.com/open-policy-agent/opa@$OPA_VERSION"
    fi
fi
