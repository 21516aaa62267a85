#!/usr/bin/env bash
# Starts Label Studio (installed by `make tools`) as docs/labelstudio_backend.md says and the
# tests run it, so a start that works in one works in the other. It serves this machine only:
# bound to 127.0.0.1, its Sentry reporting (server and browser), usage analytics and PyPI
# version check off. It serves local files and may call an ML backend or webhook on this
# machine, which it refuses by default. Arguments go to `label-studio start`; the port is
# LABEL_STUDIO_PORT (8080), the data folder LABEL_STUDIO_BASE_DATA_DIR (label-studio's default).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export SENTRY_DSN= FRONTEND_SENTRY_DSN= COLLECT_ANALYTICS=false LATEST_VERSION_CHECK=false
export LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=/
export ML_BLOCK_LOCAL_IP=false SSRF_PROTECTION_ENABLED=false
exec "$root/.venv-tools/labelstudio/bin/label-studio" start --no-browser \
    --internal-host 127.0.0.1 "$@"
