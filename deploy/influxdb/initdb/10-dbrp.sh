#!/bin/bash
# Runs once, right after the influxdb image's first-start setup (DOCKER_INFLUXDB_INIT_MODE=setup).
# Maps the InfluxQL database/retention policy "$DOCKER_INFLUXDB_INIT_BUCKET/autogen" to the bucket,
# so that the InfluxQL queries of docs/influxdb.md work as well as Flux.
set -euo pipefail
influx v1 dbrp create \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
  --rp autogen \
  --default \
  --org "${DOCKER_INFLUXDB_INIT_ORG}"
