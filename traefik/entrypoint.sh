#!/bin/sh
# Traefik's start in the image and in scripts/run-local (docs/tls.md): plain HTTP runs
# traefik.yml as is. With ACME_EMAIL, the ACME resolver (acme.yml, its ${NAME} placeholders
# filled) is appended to a copy in $TMPDIR (the image's root filesystem is read-only). With HTTPS on (ACME_EMAIL or
# TLS_CERT_FILE) GODEBUG=http2server=0 is lifted: it would break HTTP/2 over TLS, and `web`
# then routes nothing but the redirect to HTTPS. Half a setting stops here with one line.
# With ACME, the routes are read from a watched directory and acme-retry.sh runs beside Traefik:
# a CA that is down or refuses at start is asked again until both names have a certificate.
set -eu
# Where traefik.yml and acme.yml are (the image: /etc/traefik; run-local: its RUN_DIR).
config_dir=${TRAEFIK_CONFIG_DIR:-/etc/traefik}
static=$config_dir/traefik.yml
here=$(dirname "$0")
traefik=${TRAEFIK_BIN:-traefik}
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
  retry=${ACME_RETRY_SECONDS:-60}
  case "$retry" in
    *[!0-9]*) die "ACME_RETRY_SECONDS=$retry is not a whole number of seconds > 0" ;;
  esac
  [ "$retry" -gt 0 ] || die "ACME_RETRY_SECONDS=$retry is not a whole number of seconds > 0"
  case "$ca$storage" in
    *[!A-Za-z0-9:/._~%?=-]*) die "ACME_CA_SERVER or ACME_STORAGE holds a character not allowed here" ;;
  esac
  # Traefik's ACME client crashes its first call on a missing root file: say it now.
  for root in $(echo "${LEGO_CA_CERTIFICATES:-}" | tr ':' ' '); do
    [ -r "$root" ] || die "LEGO_CA_CERTIFICATES names $root, which is not readable"
  done
  work="${TMPDIR:-/tmp}"
  rendered="$work/traefik-static.yml"
  # The routes from a watched directory, for acme-retry.sh's file beside them. The Swarm
  # stack's static file has one already (traefik-upstreams.sh); the image's names one file.
  routes=$(sed -n 's/^ *directory: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$static" | head -n 1)
  file=$(sed -n 's/^ *filename: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$static" | head -n 1)
  if [ -z "$routes" ]; then
    [ -n "$file" ] || die "$static has no file provider (filename or directory) to watch"
    routes="$work/traefik-dynamic"
    mkdir -p "$routes"
    cp "$file" "$routes/routes.yml"
  fi
  {
    if [ -n "$file" ]; then
      sed -e "s#^\( *\)filename: .*\$#\1directory: \"$routes\"#" \
          -e 's#^\( *\)watch: false$#\1watch: true#' "$static"
    else
      cat "$static"
    fi
    echo
    sed -e "/^[[:space:]]*#/!{
s|\${ACME_EMAIL}|\"$ACME_EMAIL\"|
s|\${ACME_CA_SERVER}|\"$ca\"|
s|\${ACME_STORAGE}|\"$storage\"|
}" "$config_dir/acme.yml"
  } > "$rendered"
  grep -q '^ *watch: true$' "$rendered" || die "$static: the file provider must watch its routes"
  static=$rendered
  # Traefik's child after the exec below; it ends by itself once both names are issued.
  "$here/acme-retry.sh" "$routes" "$storage" "${UI_HOST:-ui.service.localhost}" \
    "${API_HOST:-api.service.localhost}" &
fi
exec "$traefik" --configFile="$static" "$@"
