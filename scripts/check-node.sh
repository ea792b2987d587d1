#!/usr/bin/env bash
# The web app is built with Node 20 or newer; Debian 12 ships Node 18.
set -euo pipefail
major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/' || true)
if [ "${major:-0}" -lt 20 ]; then
  echo "Node.js 20 or newer is needed to build the web app (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "Debian 12 ships Node 18: install Node 20 (for example NodeSource's nodejs 20.x package) and run make again." >&2
  exit 1
fi
