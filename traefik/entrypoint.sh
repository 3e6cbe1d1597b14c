#!/bin/sh
# The image's start (docs/tls.md): plain HTTP runs traefik.yml as is. With ACME_EMAIL, the ACME
# resolver (acme.yml, its ${NAME} placeholders filled, as scripts/run-local does) is appended to
# a copy in $TMPDIR (the root filesystem is read-only). With HTTPS on (ACME_EMAIL or
# TLS_CERT_FILE) GODEBUG=http2server=0 is lifted: it would break HTTP/2 over TLS, and `web`
# then routes nothing but the redirect to HTTPS. Half a setting stops here with one line.
set -eu
# Where traefik.yml and acme.yml are (the image: /etc/traefik; the tests: the checkout).
config_dir=${TRAEFIK_CONFIG_DIR:-/etc/traefik}
static=$config_dir/traefik.yml
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
  case "$ca$storage" in
    *[!A-Za-z0-9:/._~%?=-]*) die "ACME_CA_SERVER or ACME_STORAGE holds a character not allowed here" ;;
  esac
  # Traefik's ACME client crashes its first call on a missing root file: say it now.
  for root in $(echo "${LEGO_CA_CERTIFICATES:-}" | tr ':' ' '); do
    [ -r "$root" ] || die "LEGO_CA_CERTIFICATES names $root, which is not readable"
  done
  rendered="${TMPDIR:-/tmp}/traefik.yml"
  {
    cat "$static"
    echo
    sed -e "/^[[:space:]]*#/!{
s|\${ACME_EMAIL}|\"$ACME_EMAIL\"|
s|\${ACME_CA_SERVER}|\"$ca\"|
s|\${ACME_STORAGE}|\"$storage\"|
}" "$config_dir/acme.yml"
  } > "$rendered"
  static=$rendered
fi
exec traefik --configFile="$static" "$@"
