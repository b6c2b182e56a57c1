#!/usr/bin/env bash
# Installs every peer tools/bench.py measures next to ProntoDB, so that none is skipped:
#   - the Python peers of the `bench` extra (redis-py, sqlitedict), into the current Python;
#   - from Debian: redis-server and redis-cli, the sqlite3 shell, and python3-gdbm, which gives
#     /usr/bin/python3 the dbm.gnu module (a pyenv or other self-built Python often lacks
#     _gdbm; the bench then measures dbm.gnu with /usr/bin/python3 in a subprocess).
# Usage, from anywhere:  PYTHON=.venv/bin/python tools/bench_setup.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
"$python" -m pip install -q -e "$root[bench]"
if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq redis-server redis-tools sqlite3 python3-gdbm
else
    echo "bench_setup: no apt-get here; install redis-server, redis-cli, the sqlite3 shell" \
        "and dbm.gnu for python3 with this system's package manager" >&2
fi
"$python" - <<'PY'
import shutil, subprocess
missing = [tool for tool in ("redis-server", "redis-cli", "sqlite3") if not shutil.which(tool)]
gdbm = subprocess.run(["/usr/bin/python3", "-c", "import dbm.gnu"], capture_output=True)
if gdbm.returncode:
    missing.append("dbm.gnu in /usr/bin/python3")
print("bench peers: all present" if not missing else f"bench peers STILL MISSING: {missing}")
PY
