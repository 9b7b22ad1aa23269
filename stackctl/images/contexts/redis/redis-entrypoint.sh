#!/bin/sh
# Like the official redis image: `command: --maxmemory 64mb` (options only) runs
# redis-server with those options on top of the container defaults; any other command
# (`redis-server ...`, `redis-cli ...`, `sh`) runs as given.
set -e
case "${1:-}" in
    -*) exec redis-server --bind 0.0.0.0 --protected-mode no --dir /data "$@" ;;
    "") exec redis-server --bind 0.0.0.0 --protected-mode no --dir /data ;;
    *) exec "$@" ;;
esac
