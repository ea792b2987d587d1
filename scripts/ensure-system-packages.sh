#!/usr/bin/env bash
# Installs the Debian packages Callcard's tests talk to, when they are missing: the suite
# starts its own PostgreSQL and Redis from these binaries, plays SIP phones and trunks with
# SIPp behind Kamailio, and drives the web app in Chromium. Needs root or sudo.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v sipp >/dev/null || need+=(sip-tester)
command -v kamailio >/dev/null || need+=(kamailio)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> Installing Debian packages: ${need[*]} (a few minutes on a fresh machine)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
