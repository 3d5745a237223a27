#!/bin/sh
# relaydesk's container entry point: bring the database schema up to date, then run the
# command (serve by default). Migrating is idempotent and, on PostgreSQL, serialised by
# a lock, so every container may do it at start; RELAYDESK_MIGRATE=false skips it.
set -eu
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
if [ "$#" -eq 0 ]; then
  set -- serve
fi
case "$1" in
  serve|worker)
    if [ "${RELAYDESK_MIGRATE:-true}" = "true" ]; then
      relaydesk migrate
    fi
    exec relaydesk "$@"
    ;;
  relaydesk)
    exec "$@"
    ;;
  *)
    exec relaydesk "$@"
    ;;
esac
