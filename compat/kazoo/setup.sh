#!/usr/bin/env bash
# Create compat/.venv with the pinned packages of requirements.txt.
# Idempotent: does nothing when the venv already matches requirements.txt.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=$(cd "$here/.." && pwd)/.venv
req=$here/requirements.txt
stamp=$venv/.requirements.sha256

want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" >"$stamp"
