#!/usr/bin/env bash
# A private PostgreSQL cluster for trying a shared vidvar queue on one
# machine: data, log and unix socket in DIR, no TCP port, trust
# authentication for the local socket only. Prints the database URL for
# vidvard --database-url.
#
#   packaging/private-postgres.sh [DIR]        create (first time) and start
#   packaging/private-postgres.sh stop [DIR]   stop
#
# DIR defaults to /tmp/vidvar-pg. Installs PostgreSQL (apt) when missing and
# run as root. initdb refuses to run as root, so as root the cluster belongs
# to the postgres user.
set -euo pipefail

action=start
if [[ ${1:-} == stop ]]; then
  action=stop
  shift
fi
dir=${1:-/tmp/vidvar-pg}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

find_bin() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -n 1 | xargs -r dirname
}
bin=$(find_bin)
if [[ -z $bin ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "PostgreSQL is not installed: sudo apt-get install -y postgresql" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  bin=$(find_bin)
fi

as=()
if [[ $(id -u) -eq 0 ]]; then
  chown postgres: "$dir"
  as=(setpriv --reuid postgres --regid postgres --init-groups --)
fi
pg() { (cd "$dir" && "${as[@]}" "$bin/$1" "${@:2}"); }

if [[ $action == stop ]]; then
  pg pg_ctl -D "$dir/data" -m fast -w stop >&2
  exit 0
fi
if [[ ! -f $dir/data/PG_VERSION ]]; then
  pg initdb -D "$dir/data" -A trust -U vidvar >/dev/null
fi
if ! pg pg_ctl -D "$dir/data" status >/dev/null 2>&1; then
  pg pg_ctl -D "$dir/data" -o "-k $dir -c listen_addresses=''" -l "$dir/server.log" -w start >&2
fi
echo "postgresql://vidvar@/postgres?host=$dir"
