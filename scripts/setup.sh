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
    # Versions are read whole, then matched: `cmd | grep -q` under pipefail can fail when
    # grep stops reading early and the command dies of SIGPIPE.
    if ! grep -q "$UV_VERSION" <<<"$(.venv/bin/python -m uv --version 2>/dev/null || true)"; then
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
    if ! grep -q "${OPA_VERSION#v}" <<<"$(.build/bin/opa version 2>/dev/null || true)"; then
        command -v go >/dev/null || { say "needs Go to build OPA"; exit 1; }
        say "building OPA $OPA_VERSION from its Go module (a few minutes, once)"
        GOBIN="$root/.build/bin" GOFLAGS=-mod=mod go install "github.com/open-policy-agent/opa@$OPA_VERSION"
    fi
fi

# --- an S3 server (only when asked: the object-storage lake tests need one) -----------
# versitygw, an Apache-2.0 S3 gateway that keeps objects as plain files, from its Go module;
# and fake-gcs-server, a GCS emulator, from its Go module.
VERSITYGW_VERSION="v1.8.0"
FAKE_GCS_SERVER_VERSION="v1.56.1"
if [ "${SDE_SETUP_OBJSTORE:-0}" = "1" ]; then
    if [ "$(cat .build/bin/.versitygw-stamp 2>/dev/null)" != "$VERSITYGW_VERSION" ] \
        || [ ! -x .build/bin/versitygw ]; then
        command -v go >/dev/null || { say "needs Go to build versitygw"; exit 1; }
        say "building versitygw $VERSITYGW_VERSION from its Go module (about a minute, once)"
        mkdir -p .build/bin
        GOBIN="$root/.build/bin" GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local \
            go install -trimpath -ldflags "-s -w" \
            "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
        printf '%s' "$VERSITYGW_VERSION" >.build/bin/.versitygw-stamp
    fi
    # fake-gcs-server (BSD-2-Clause), a Google Cloud Storage emulator, for the GCS lake tests.
    if [ "$(cat .build/bin/.fake-gcs-server-stamp 2>/dev/null)" != "$FAKE_GCS_SERVER_VERSION" ] \
        || [ ! -x .build/bin/fake-gcs-server ]; then
        command -v go >/dev/null || { say "needs Go to build fake-gcs-server"; exit 1; }
        say "building fake-gcs-server $FAKE_GCS_SERVER_VERSION from its Go module (a few minutes, once)"
        mkdir -p .build/bin
        GOBIN="$root/.build/bin" GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local \
            go install -trimpath -ldflags "-s -w" \
            "github.com/fsouza/fake-gcs-server@$FAKE_GCS_SERVER_VERSION"
        printf '%s' "$FAKE_GCS_SERVER_VERSION" >.build/bin/.fake-gcs-server-stamp
    fi
fi

# --- kube-apiserver and etcd (only when asked: the kube tests need them) --------------
if [ "${SDE_SETUP_KUBE:-0}" = "1" ]; then
    bash "$root/scripts/setup_kube.sh"
fi

# --- Delta's jars for Apache Spark (only when asked: the Spark tests need them) --------
# PySpark comes from the lock (the `spark` extra); the jars from Maven Central, pinned.
if [ "${SDE_SETUP_SPARK:-0}" = "1" ]; then
    bash "$root/scripts/setup_spark.sh"
fi

# --- PostgreSQL server binaries (only when asked: the SQL tests start a throwaway ------
# cluster of their own in a temp dir; no system cluster or service is ever used) -------
if [ "${SDE_SETUP_POSTGRES:-0}" = "1" ]; then
    have_postgres() {
        compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
            || { command -v initdb >/dev/null && command -v pg_ctl >/dev/null; }
    }
    if ! have_postgres; then
        if [ "$(id -u)" != 0 ]; then
            say "the SQL tests need the PostgreSQL server binaries (initdb, pg_ctl), and"
            say "installing them needs root: apt-get install postgresql (then run this again)"
            exit 1
        fi
        say "installing the PostgreSQL server binaries (Debian package postgresql, once)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # postgresql-common first, told not to create (and start) a 'main' cluster: the
        # tests run initdb themselves and never need the system service.
        apt-get install -y -qq postgresql-common >/dev/null
        sed -i 's/^#\?[[:space:]]*create_main_cluster.*/create_main_cluster = false/' \
            /etc/postgresql-common/createcluster.conf
        apt-get install -y -qq postgresql >/dev/null
        have_postgres || { say "installed postgresql but found no initdb"; exit 1; }
    fi
    # PostgreSQL refuses to run as root; as root the tests run it as this system user.
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        say "creating the postgres system user"
        useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres
    fi
fi

# --- Chromium (only when asked: the browser tests drive Debian's chromium) -----------
bash "$root/scripts/setup_chromium.sh"

# --- configurable-http-proxy (only when asked: JupyterHub needs it; from npm, locked) --
if [ "${SDE_SETUP_HUB:-0}" = "1" ]; then
    node_stamp=".build/node/.sde-lock-$(sha256sum scripts/node/package-lock.json | cut -c1-16)"
    if [ ! -f "$node_stamp" ] || [ ! -x .build/node/node_modules/.bin/configurable-http-proxy ]; then
        command -v npm >/dev/null || { say "needs npm for configurable-http-proxy"; exit 1; }
        say "installing configurable-http-proxy from npm (locked)"
        rm -rf .build/node && mkdir -p .build/node
        cp scripts/node/package.json scripts/node/package-lock.json .build/node/
        (cd .build/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        touch "$node_stamp"
    fi
fi
