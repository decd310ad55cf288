#!/usr/bin/env bash
# The demo: installs netguard into .venv and runs `netguard demo` on embedded defaults.
# Any arguments go to `netguard demo` (e.g. --duration 90, --mqtt-url mqtt://host:1883).
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
ng_venv demo
exec "$ng_root/.venv/bin/netguard" demo "$@"
