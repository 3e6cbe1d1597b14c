#!/bin/sh
# Entry point of Traefik in the Swarm stack (a Swarm config, deploy/swarm/stack.yml). Why: the
# services run with endpoint_mode dnsrr (no virtual IP), and a proxy given one URL such as
# http://tasks.api:8000 resolves it once per new connection and then reuses pooled
# connections to whichever replica came first: it does not balance. So this script resolves
# tasks.<service> every UPSTREAMS_REFRESH_SECONDS and writes a file-provider file with one server
# per replica (Traefik's file provider watches it, and its health checks drop a dead replica in
# seconds, before Swarm's DNS does). No docker.sock anywhere: Swarm's own DNS is the only source.
#
# Traefik starts through the image's entrypoint.sh with TRAEFIK_ROUTES_DIR: the static
# configuration is the image's own /etc/traefik/traefik.yml with the file provider turned to that
# watched directory, where the routes are the image's dynamic.yml (UPSTREAMS_GENERATED makes it
# leave the services to this script). Everything is written to the /tmp tmpfs. HTTPS
# (TLS_CERT_FILE from Swarm secrets, or ACME_EMAIL: deploy/swarm/stack.tls.yml, docs/tls.md)
# works here as in compose.
set -eu

# The image's configuration directory (TRAEFIK_CONFIG_DIR: the tests run this on the checkout).
config_dir=${TRAEFIK_CONFIG_DIR:-/etc/traefik}
run=${UPSTREAMS_DIR:-/tmp/traefik}
api_tasks=${API_TASKS:-tasks.api}
ui_tasks=${UI_TASKS:-tasks.ui}
refresh=${UPSTREAMS_REFRESH_SECONDS:-2}
export UPSTREAMS_GENERATED=1

mkdir -p "$run/dynamic"

servers() {  # TASKS_NAME PORT: one YAML server line per IPv4 address of the name, sorted
  addresses=$(getent ahostsv4 "$1" 2>/dev/null | awk '{print $1}' | sort -u)
  if [ -z "$addresses" ]; then
    echo "        servers: []"
    return
  fi
  echo "        servers:"
  for address in $addresses; do
    echo "          - url: \"http://$address:$2\""
  done
}

render() {
  cat <<EOF
# Written by traefik-upstreams.sh from the DNS of $api_tasks and $ui_tasks.
http:
  services:
    api:
      loadBalancer:
        serversTransport: upstream
        # A replica that stops answering is out of the rotation within ~3 s.
        healthCheck: {path: /healthz, interval: 2s, timeout: 1s}
$(servers "$api_tasks" 8000)
    ui:
      loadBalancer:
        serversTransport: upstream
        healthCheck: {path: /, interval: 2s, timeout: 1s}
$(servers "$ui_tasks" 8080)
EOF
}

refresh_upstreams() {
  render >"$run/upstreams.next"
  if ! cmp -s "$run/upstreams.next" "$run/dynamic/upstreams.yml"; then
    # rename(2): Traefik never reads a half-written file.
    mv "$run/upstreams.next" "$run/dynamic/upstreams.yml"
  fi
}

refresh_upstreams
# The loop is Traefik's child after the exec below; it ends with the container.
(while sleep "$refresh"; do refresh_upstreams || true; done) &
# entrypoint.sh writes the static file with the routes from $run/dynamic (watched) and copies
# the image's dynamic.yml there beside upstreams.yml.
TRAEFIK_ROUTES_DIR=$run/dynamic TMPDIR=$run exec "$config_dir/entrypoint.sh"
