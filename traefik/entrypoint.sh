#!/bin/sh
# Traefik's start in the image, in the Swarm stack and in scripts/run-local (docs/tls.md): plain
# HTTP runs traefik.yml as is. With a watched routes directory (TRAEFIK_ROUTES_DIR, or ACME on)
# a copy in $TMPDIR (the image's root filesystem is read-only) reads the routes from there; with
# ACME_EMAIL the copy also gets the ACME resolver (acme.yml, its ${NAME} placeholders filled)
# and acme-retry.sh runs beside Traefik: a CA that is down or refuses at start is asked again
# until both names have a certificate. With HTTPS on (ACME_EMAIL or TLS_CERT_FILE)
# GODEBUG=http2server=0 is lifted: it would break HTTP/2 over TLS, and `web` then routes nothing
# but the redirect to HTTPS. Half a setting stops here with one line.
set -eu
# Where traefik.yml is (the image: /etc/traefik; run-local: its RUN_DIR).
config_dir=${TRAEFIK_CONFIG_DIR:-/etc/traefik}
static=$config_dir/traefik.yml
# Beside this script: dynamic.yml (the routes) and acme.yml (the ACME resolver's template).
here=$(dirname "$0")
traefik=${TRAEFIK_BIN:-traefik}
work=${TMPDIR:-/tmp}
# A watched directory for the routes, when something else writes files there: the Swarm
# stack's start script (its upstreams) or, with ACME, acme-retry.sh (set below).
routes=${TRAEFIK_ROUTES_DIR:-}
die() { echo "traefik: $*" >&2; exit 2; }

if [ -n "${ACME_CA_SERVER:-}" ] && [ -z "${ACME_EMAIL:-}" ]; then
  die "ACME_CA_SERVER=$ACME_CA_SERVER is set but ACME_EMAIL is not: ACME needs a contact address"
fi
if [ -n "${ACME_EMAIL:-}" ] || [ -n "${TLS_CERT_FILE:-}" ]; then
  unset GODEBUG
fi
if [ -n "${ACME_EMAIL:-}" ]; then
  ca=${ACME_CA_SERVER:-https://acme-v02.api.letsencrypt.org/directory}
  storage=${ACME_STORAGE:-/var/lib/traefik/acme.json}
  # The values go between double quotes in YAML and through sed: a strict character set.
  case "$ACME_EMAIL" in
    *[!A-Za-z0-9@._+-]* | *@*@* | @* | *@) die "ACME_EMAIL=$ACME_EMAIL is not an e-mail address" ;;
    *@*.*) ;;
    *) die "ACME_EMAIL=$ACME_EMAIL is not an e-mail address" ;;
  esac
  case "$ca" in https://*) ;; *) die "ACME_CA_SERVER=$ca is not an https:// URL" ;; esac
  "$here/acme-retry.sh" --check || exit 2
  case "$ca$storage" in
    *[!A-Za-z0-9:/._~%?=-]*) die "ACME_CA_SERVER or ACME_STORAGE holds a character not allowed here" ;;
  esac
  # Traefik's ACME client crashes its first call on a missing root file: say it now.
  for root in $(echo "${LEGO_CA_CERTIFICATES:-}" | tr ':' ' '); do
    [ -r "$root" ] || die "LEGO_CA_CERTIFICATES names $root, which is not readable"
  done
  routes=${routes:-$work/traefik-dynamic}
fi
if [ -n "$routes" ]; then
  # The routes from a watched directory: dynamic.yml (beside this script) copied into it, the
  # static file's one routing file turned to that directory.
  mkdir -p "$routes"
  cp "$here/dynamic.yml" "$routes/routes.yml"
  rendered="$work/traefik.yml"
  {
    sed -e "s#^\( *\)filename: .*\$#\1directory: \"$routes\"#" \
        -e 's#^\( *\)watch: false$#\1watch: true#' "$static"
    if [ -n "${ACME_EMAIL:-}" ]; then
      echo
      sed -e "/^[[:space:]]*#/!{
s|\${ACME_EMAIL}|\"$ACME_EMAIL\"|
s|\${ACME_CA_SERVER}|\"$ca\"|
s|\${ACME_STORAGE}|\"$storage\"|
}" "$here/acme.yml"
    fi
  } >"$rendered"
  if ! grep -q "^ *directory: \"$routes\"\$" "$rendered" || ! grep -q '^ *watch: true$' "$rendered"; then
    die "$static has no 'filename:' + 'watch: false' file provider to turn to $routes"
  fi
  static=$rendered
fi
if [ -n "${ACME_EMAIL:-}" ]; then
  # Traefik's child after the exec below; it ends by itself once both names are issued.
  "$here/acme-retry.sh" "$routes" "$storage" "${UI_HOST:-ui.service.localhost}" \
    "${API_HOST:-api.service.localhost}" &
fi
exec "$traefik" --configFile="$static" "$@"
