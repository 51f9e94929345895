#!/bin/sh
# pip inside an image build: trusts the CA bundle of the optional `pip_cert` build secret (a
# TLS-intercepting proxy's), which BuildKit mounts for that step only, never into a layer.
set -eu
if [ -f /run/secrets/pip_cert ]; then
    export PIP_CERT=/run/secrets/pip_cert
fi
exec pip "$@"
