#!/bin/sh
# Image build helper: run a command that downloads (pip, the TemplateFlow client, urllib) trusting
# the CA bundle named by the build argument BUILD_CA_BUNDLE, for networks whose proxy re-signs TLS.
# The file must be visible inside the build (e.g. buildah bud -v /etc/ssl/certs/ca-certificates.crt:
# /run/build-ca.crt:ro --build-arg BUILD_CA_BUNDLE=/run/build-ca.crt). Empty: no change.
set -eu
if [ -n "${BUILD_CA_BUNDLE:-}" ]; then
    if [ ! -r "$BUILD_CA_BUNDLE" ]; then
        echo "BUILD_CA_BUNDLE=$BUILD_CA_BUNDLE is not readable inside the build" >&2
        exit 2
    fi
    PIP_CERT="$BUILD_CA_BUNDLE"
    SSL_CERT_FILE="$BUILD_CA_BUNDLE"
    REQUESTS_CA_BUNDLE="$BUILD_CA_BUNDLE"
    CURL_CA_BUNDLE="$BUILD_CA_BUNDLE"
    export PIP_CERT SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE
fi
exec "$@"
