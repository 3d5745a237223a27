#!/bin/sh
# Copy the panel's pinned front-end packages (installed by `npm ci` into node_modules)
# next to its own static files. Used by the Makefile and the Dockerfile.
set -eu
vendor=src/relaydesk/web/static/vendor
mkdir -p "$vendor"
cp node_modules/htmx.org/dist/htmx.min.js \
  node_modules/@picocss/pico/css/pico.min.css \
  node_modules/swagger-ui-dist/swagger-ui-bundle.js \
  node_modules/swagger-ui-dist/swagger-ui.css \
  node_modules/chart.js/dist/chart.umd.min.js \
  "$vendor"/
