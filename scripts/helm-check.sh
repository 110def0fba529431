#!/usr/bin/env bash
# Renders the Helm chart with a real Helm engine for every value set in
# deploy/helm/ci/, lints it, validates the manifests against the
# Kubernetes 1.30 and 1.33 schemas, runs checkov, and checks the
# properties deploy/helm/check.py lists. The tools come from PyPI into a
# virtualenv under target/ (no Helm binary or cluster needed).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/helm-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --no-cache-dir --disable-pip-version-check \
  helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 checkov==3.3.30 pyyaml==6.0.4
exec "$VENV/bin/python" deploy/helm/check.py
