# Build and tag images exactly as docker compose does (same names, tags and build args), from
# any directory. Usage: scripts/docker-build.ps1 [docker compose build options] [SERVICE...]
# The per-service docker-build.ps1 scripts call this with their service's name.
# Environment: IMAGE_PREFIX, IMAGE_TAG and the base-image variables (.env.example).
$ErrorActionPreference = 'Stop'
Push-Location (Join-Path $PSScriptRoot '..')
try {
    docker compose build @args
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
} finally {
    Pop-Location
}
