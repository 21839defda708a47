#!/usr/bin/env bash
# Install and start a local PostgreSQL for rerate's integration tests (Debian/Ubuntu, as root).
# The tests look for it at RERATE_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres)
# and are skipped, with a loud notice, when no server answers.
set -euo pipefail
if pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  echo "PostgreSQL already answers on 127.0.0.1:5432"
  exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
conf=/etc/postgresql/$version/main
# Local trust authentication: a throwaway test server, reachable from this machine only.
sed -i 's/^\(host\s\+all\s\+all\s\+127.0.0.1\/32\s\+\).*/\1trust/' "$conf/pg_hba.conf"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main start
pg_isready -h 127.0.0.1 -p 5432
echo "PostgreSQL $version is up on 127.0.0.1:5432"
