#!/usr/bin/env bash
# Makes sure the real servers the tests use answer on loopback. Outside CI it starts the
# ones that are installed but stopped; under CI=true it only reports (the tests then fail).
set -uo pipefail
pg_host=${CALLCARD_TEST_PG_HOST:-127.0.0.1}
pg_up() { pg_isready -q -h "$pg_host" -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if [ "${CI:-}" != "true" ]; then
  if ! redis_up && command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    sleep 0.5
  fi
  if ! pg_up && command -v pg_ctlcluster >/dev/null; then
    for v in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || true
    done
    sleep 1
  fi
fi
pg_up && echo "PostgreSQL: up" || echo "PostgreSQL: NOT reachable on $pg_host:5432"
redis_up && echo "Redis: up" || echo "Redis: NOT reachable on 127.0.0.1:6379"
exit 0
