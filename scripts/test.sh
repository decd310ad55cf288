#!/usr/bin/env bash
# The whole test suite, installing what it needs first: Debian packages (snmpd, snmp,
# mosquitto, prometheus, prometheus-alertmanager, postgresql, systemd) when missing, and
# netguard with its dev extras in .venv, at the versions in constraints.txt (refresh with
# scripts/lock.sh).
# Then lint (ruff), types (mypy strict) and pytest. Arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
cd "$ng_root"

# Every tool a test requires (tests/support/tools.py PACKAGES): under CI=true a missing one
# fails the run instead of skipping tests.
ng_apt_install snmpd snmp mosquitto prometheus prometheus-alertmanager postgresql systemd
ng_venv dev

# Tests make throwaway databases on a local PostgreSQL (NETGUARD_TEST_PG overrides).
if [ -z "${NETGUARD_TEST_PG:-}" ]; then
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        echo "netguard: starting PostgreSQL" >&2
        pg_ver="$(ls /etc/postgresql | sort -V | tail -n 1)"
        $ng_sudo pg_ctlcluster --skip-systemctl-redirect "$pg_ver" main start
        for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
    fi
    # Trust auth on loopback is how this machine ships. Elsewhere (Debian's default is
    # password auth over TCP) use a dedicated role that may create databases, rather
    # than touching the postgres superuser; or give NETGUARD_TEST_PG yourself.
    if ! psql -w -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
        if [ -z "$ng_sudo" ]; then ng_as_pg=(runuser -u postgres --); else ng_as_pg=(sudo -u postgres); fi
        "${ng_as_pg[@]}" psql -q -d postgres >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'netguard_test') THEN
    CREATE ROLE netguard_test LOGIN CREATEDB PASSWORD 'netguard_test';
  END IF;
END $$;
SQL
        export NETGUARD_TEST_PG="postgresql://netguard_test:netguard_test@127.0.0.1:5432/postgres"
    fi
fi

.venv/bin/ruff check netguard tests bench
.venv/bin/mypy
# The whole suite runs on 2 xdist workers (docs/testing.md); a run with arguments (one area,
# -x, -k ...) runs in one process, as before. NETGUARD_TEST_WORKERS overrides both:
# a number, 0 for no xdist, or auto for one worker per core.
if [ "$#" -eq 0 ]; then workers="${NETGUARD_TEST_WORKERS:-2}"; else workers="${NETGUARD_TEST_WORKERS:-0}"; fi
if [ "$workers" = 0 ]; then
    .venv/bin/pytest "$@"
else
    .venv/bin/pytest -n "$workers" --dist loadgroup "$@"
fi
