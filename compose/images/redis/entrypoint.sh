#!/bin/sh
# As the official image does: a redis-server started without a config file serves the
# container network (protected mode only lets loopback in, and no one else is in here).
set -e
if [ "$1" = "redis-server" ]; then
  case "${2:-}" in
    "" | -*) shift; set -- redis-server --protected-mode no "$@" ;;
  esac
fi
exec "$@"
