#!/usr/bin/env bash
# Prints the path of a Python >= 3.12 (the interpreter itself, not a pyenv shim):
# python3.12, python3.13, python3.14, python3 on PATH, then pyenv's installed versions
# ${PYENV_ROOT:-$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3, which work even where
# pyenv is not on PATH or the version is not selected. Exits 1 with a message otherwise.
#
#   PY=$(bash .ci/find_python.sh) && "$PY" -m venv .venv
set -u

# The interpreter's own path when it runs and is >= 3.12 (a shim of an unselected
# version fails here and is skipped).
real_python() {
  "$1" -c 'import sys; assert sys.version_info >= (3, 12); print(sys.executable)' 2>/dev/null
}

for name in python3.12 python3.13 python3.14 python3; do
  candidate=$(command -v "$name" 2>/dev/null) || continue
  if found=$(real_python "$candidate") && [ -n "$found" ]; then
    echo "$found"
    exit 0
  fi
done

pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
for candidate in "$pyenv_root"/versions/3.1[2-9]*/bin/python3; do
  [ -x "$candidate" ] || continue
  if found=$(real_python "$candidate") && [ -n "$found" ]; then
    echo "$found"
    exit 0
  fi
done

echo "find_python.sh: no Python >= 3.12 found: tried python3.12, python3.13, python3.14 and" \
     "python3 on PATH and $pyenv_root/versions/3.1[2-9]*/bin/python3. Install one (e.g." \
     "'pyenv install 3.12') or put it on PATH." >&2
exit 1
