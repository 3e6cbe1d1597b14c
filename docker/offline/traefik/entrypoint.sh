#!/bin/sh
# Same behaviour as the official image's entrypoint: flags alone (or a traefik subcommand) run
# traefik with them; anything else is executed as a command.
set -e
case "$1" in
  -*) set -- traefik "$@" ;;
esac
if [ "$1" != traefik ] && traefik "$1" --help >/dev/null 2>&1; then
  set -- traefik "$@"
fi
exec "$@"
