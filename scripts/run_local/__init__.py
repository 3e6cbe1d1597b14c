"""scripts/run-local as a package: the whole stack without Docker (see docs/run-local.md).

Standard library only: it runs before .venv exists. One idea per module:
config (environment, ports, binaries), render (nginx and Traefik files from the shared ones),
supervise (child processes: start, relay output, readiness, stop), stack (the four services)
and cli (the command).
"""
