#!/usr/bin/env bash
# Make sure this machine can run the test suite's throwaway PostgreSQL server
# (tests/pgserver.py): pg_config, the server programs (initdb, postgres,
# pg_ctl, pg_isready, psql) and, when tests run as root, the `postgres` user.
#
# Idempotent: installs nothing when everything is already there. Installs
# with apt-get (Debian/Ubuntu) only; elsewhere it says what is missing.
# It does not start, stop or configure any system cluster: the tests start
# their own private server.
#
# Usage: scripts/ensure-postgres.sh        (as root, or with passwordless sudo)
set -euo pipefail

log() { printf 'ensure-postgres: %s\n' "$*"; }
die() { printf 'ensure-postgres: ERROR: %s\n' "$*" >&2; exit 1; }

SERVER_PROGRAMS=(initdb postgres pg_ctl pg_isready psql)

has_server_programs() { # $1 = bindir
    local dir=$1 prog
    [ -n "$dir" ] || return 1
    for prog in "${SERVER_PROGRAMS[@]}"; do
        [ -x "$dir/$prog" ] || return 1
    done
}

find_bindir() { # prints the bindir, or fails
    local dir
    if [ -n "${LOOPWATCH_PG_BINDIR:-}" ] && has_server_programs "$LOOPWATCH_PG_BINDIR"; then
        printf '%s\n' "$LOOPWATCH_PG_BINDIR"; return 0
    fi
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir 2>/dev/null || true)
        if has_server_programs "$dir"; then printf '%s\n' "$dir"; return 0; fi
    fi
    # Newest major version first.
    while IFS= read -r dir; do
        if has_server_programs "$dir"; then printf '%s\n' "$dir"; return 0; fi
    done < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -rn)
    return 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "need root (or passwordless sudo) to run: $*"
    fi
}

# 1. Programs -----------------------------------------------------------------
missing=()
command -v pg_config >/dev/null 2>&1 || missing+=("pg_config")
bindir=$(find_bindir || true)
[ -n "$bindir" ] || missing+=("server programs (${SERVER_PROGRAMS[*]})")

if [ ${#missing[@]} -eq 0 ]; then
    log "PostgreSQL already installed: pg_config=$(command -v pg_config), bindir=$bindir ($("$bindir/postgres" --version))"
else
    log "missing: ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found; install the PostgreSQL server (>= 13) and pg_config with this system's package manager, or set LOOPWATCH_PG_BINDIR"
    export DEBIAN_FRONTEND=noninteractive
    log "installing with: apt-get update && apt-get install -y postgresql"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update \
        || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
        || die "apt-get install postgresql failed"
    hash -r
    command -v pg_config >/dev/null 2>&1 || die "pg_config still missing after installing postgresql"
    bindir=$(find_bindir || true)
    [ -n "$bindir" ] || die "server programs (${SERVER_PROGRAMS[*]}) still not found after installing postgresql"
    log "installed: bindir=$bindir ($("$bindir/postgres" --version))"
    log "note: the package may have created a system cluster; the tests do not use it"
fi

# 2. The `postgres` user (PostgreSQL refuses to run as root) ------------------
if id -u postgres >/dev/null 2>&1; then
    log "system user 'postgres' exists (uid $(id -u postgres))"
elif [ "$(id -u)" -ne 0 ]; then
    log "no 'postgres' user; fine while tests run as $(id -un) (only root needs it)"
else
    die "no 'postgres' system user: tests run as root need it to start PostgreSQL; reinstall the postgresql package or create it (useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres)"
fi

# 3. runuser, to switch to that user when root ---------------------------------
if [ "$(id -u)" -eq 0 ] && ! command -v runuser >/dev/null 2>&1; then
    log "note: runuser not found; tests/pgserver.py falls back to switching user in Python"
fi

log "ok"
