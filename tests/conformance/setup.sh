#!/usr/bin/env bash
# Creates target/conformance-venv with the pinned LiteLLM (requirements.txt) and builds the
# virtual-clock shim (vclock.c -> target/conformance-venv/vclock.so) that litellm_driver.py
# preloads. Idempotent: does nothing when the venv already holds exactly these requirements
# and the shim is up to date. Bounded: pip gets CONFORMANCE_PIP_TIMEOUT seconds (default 600).
# Needs python3 (>= 3.11), its venv module, a C compiler (cc) and the package registry.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/conformance-venv
requirements=tests/conformance/requirements.txt
stamp="$venv/.requirements.sha256"
python=${PYTHON:-python3}
want_litellm=$(sed -n 's/^litellm==//p' "$requirements")
want_stamp=$(sha256sum "$requirements" | cut -d' ' -f1)

installed_litellm() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null || true
}

if [ -x "$venv/bin/python" ] && [ "$(installed_litellm)" = "$want_litellm" ] \
  && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ]; then
  echo "conformance venv: litellm $want_litellm already installed in $venv"
else
  "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "python >= 3.11 needed (tomllib)")'
  mkdir -p target
  "$python" -m venv "$venv"
  timeout "${CONFORMANCE_PIP_TIMEOUT:-600}" "$venv/bin/python" -m pip install \
    --disable-pip-version-check --no-input --quiet -r "$requirements"
  test "$(installed_litellm)" = "$want_litellm"
  echo "$want_stamp" >"$stamp"
  echo "conformance venv: installed litellm $want_litellm into $venv"
fi

so="$venv/vclock.so"
if [ ! -f "$so" ] || [ tests/conformance/vclock.c -nt "$so" ]; then
  "${CC:-cc}" -O2 -shared -fPIC -o "$so" tests/conformance/vclock.c -ldl
  echo "conformance venv: built $so"
fi
