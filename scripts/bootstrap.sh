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
    if ng_venv_current "$extra"; then
        return 0
    fi
    echo "netguard: installing netguard[$extra] into .venv from constraints.txt" \
         "(about a minute the first time)" >&2
    local log="$ng_root/.venv/pip.log"
    if ! "$ng_root/.venv/bin/python" -m pip install -q --upgrade pip >"$log" 2>&1; then
        cat "$log" >&2
        exit 1
    fi
    # One line per package instead of pip's silence (-q) or its full chatter; the whole
    # output is kept in .venv/pip.log and shown when pip fails.
    if ! "$ng_root/.venv/bin/python" -m pip install --progress-bar off \
            -c "$ng_root/constraints.txt" -e "$ng_root[$extra]" 2>&1 \
            | tee -a "$log" | sed -un 's/^Collecting \([^ ]*\).*/  collecting \1/p'; then
        tail -n 40 "$log" >&2
        echo "netguard: pip failed; the full output is in $log" >&2
        exit 1
    fi
    rm -f "$ng_root"/.venv/.netguard-*
    touch "$ng_root/.venv/.netguard-$extra"
    echo "netguard: .venv ready" >&2
}

ng_venv_current() {
    # True when .venv already holds netguard[EXTRA] as pyproject.toml and constraints.txt
    # now ask for it. The dev extra includes demo, so a test venv serves the demo as is.
    local extra="$1" candidates=("$1")
    [ "$extra" = demo ] && candidates+=(dev)
    local stamp
    for candidate in "${candidates[@]}"; do
        stamp="$ng_root/.venv/.netguard-$candidate"
        if [ -f "$stamp" ] && [ ! "$ng_root/pyproject.toml" -nt "$stamp" ] \
                && [ ! "$ng_root/constraints.txt" -nt "$stamp" ]; then
            return 0
        fi
    done
    return 1
}
