#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: a virtualenv in .venv with netguard
# installed in it. Usage: source scripts/bootstrap.sh EXTRA   (EXTRA is demo or dev)
set -euo pipefail

ng_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ng_sudo=""
[ "$(id -u)" = 0 ] || ng_sudo="sudo"

ng_apt_install() {
    # Installs the Debian packages given, once, only when some are missing.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "netguard: installing Debian packages: ${missing[*]}" >&2
        $ng_sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $ng_sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

ng_venv() {
    local extra="$1"
    local py="${PYTHON:-python3}"
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "netguard needs Python 3.11 or later; $("$py" --version) found" >&2
        exit 1
    fi
    if [ ! -x "$ng_root/.venv/bin/python" ]; then
        "$py" -m venv "$ng_root/.venv" 2>/dev/null || {
            # Debian splits venv out of the interpreter package.
            ng_apt_install "python3-venv"
            rm -rf "$ng_root/.venv"
            "$py" -m venv "$ng_root/.venv"
        }
    fi
    local stamp="$ng_root/.venv/.netguard-$extra"
    if [ ! -f "$stamp" ] || [ "$ng_root/pyproject.toml" -nt "$stamp" ]; then
        "$ng_root/.venv/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$ng_root/.venv/bin/python" -m pip install -q -e "$ng_root[$extra]"
        touch "$stamp"
    fi
}
