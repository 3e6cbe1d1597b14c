#!/bin/sh
# acme-retry.sh DIR STORAGE NAME...: started in the background by entrypoint.sh when ACME is on.
# Why: Traefik asks the ACME CA for a host's certificate when a dynamic configuration names it,
# and never again by itself after a failed order (traefik/traefik#9405; its maintainers, in
# #7784: "a new configuration triggers a new attempt"). A CA that is down or refuses at start
# would leave the stack on Traefik's default certificate until a restart. So, while STORAGE
# (Traefik's acme.json) lacks a certificate for one of the NAMEs, this writes DIR/acme-retry.yml
# (DIR: the file provider's watched directory) with a new value: a new configuration, and Traefik
# asks again. The waits double from ACME_RETRY_SECONDS (default 60) up to an hour, so a CA that
# keeps refusing is not hammered (Let's Encrypt allows 5 failed validations per host per hour).
# It ends once every name has its certificate; renewals are Traefik's own timer's.
# `acme-retry.sh --check` only checks ACME_RETRY_SECONDS (entrypoint.sh, before Traefik starts).
set -eu
wait=${ACME_RETRY_SECONDS:-60}
case "$wait" in
  *[!0-9]*) valid=false ;;
  *) if [ "$wait" -gt 0 ]; then valid=true; else valid=false; fi ;;
esac
if ! $valid; then
  echo "acme-retry: ACME_RETRY_SECONDS=$wait is not a whole number of seconds > 0" >&2
  exit 2
fi
[ "${1:-}" != --check ] || exit 0
if [ $# -lt 3 ]; then
  echo "usage: acme-retry.sh [--check] DIR STORAGE NAME..." >&2
  exit 2
fi
dir=$1
storage=$2
shift 2
longest=3600

issued() {  # every NAME is the main domain of a certificate in STORAGE
  for name in "$@"; do
    # acme.json is Traefik's JSON, indented: "main": "<name>" per certificate.
    grep -qF "\"main\": \"$name\"" "$storage" 2>/dev/null || return 1
  done
}

attempt=0
while ! issued "$@"; do
  sleep "$wait"
  issued "$@" && break
  attempt=$((attempt + 1))
  # An unused middleware: a harmless change of the configuration, written whole and renamed
  # (rename(2): Traefik never reads half a file; it ignores a name not ending in .yml).
  cat >"$dir/acme-retry.next" <<EOF
# Written by traefik/acme-retry.sh: a new configuration makes Traefik ask the ACME CA again.
http:
  middlewares:
    acme-retry:
      headers:
        customResponseHeaders:
          X-Acme-Retry: "$attempt"
EOF
  mv "$dir/acme-retry.next" "$dir/acme-retry.yml"
  wait=$((wait * 2))
  [ "$wait" -le "$longest" ] || wait=$longest
  echo "acme-retry: no certificate yet for every one of $*; asking the CA again" \
       "(attempt $attempt; if it fails too, the next in ${wait}s)" >&2
done
