# shellcheck shell=bash
# Sourced by .ci/run (and by a developer: `source .ci/services.sh`): install
# if missing, then start, a real redis-server and a real PostgreSQL for the
# integration tests, on loopback, on random free ports, with their data in
# a temporary directory; export where they are, and stop them (and remove
# the data) when the sourcing shell exits.
#
#   VEXORA_TEST_REDIS_URL     redis://127.0.0.1:PORT/0
#   VEXORA_TEST_POSTGRES_DSN  postgresql://postgres@127.0.0.1:PORT/postgres
#
# Debian packages: redis-server, postgresql. PostgreSQL refuses to run as
# root, so as root its server runs as the `postgres` user the package makes.

_vexora_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_vexora_pg_bin() {
    find /usr/lib/postgresql -maxdepth 3 -name initdb -path '*/bin/*' 2>/dev/null |
        sort -V | tail -n 1 | xargs -r dirname
}

_vexora_as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

_vexora_services_stop() {
    local dir=${VEXORA_SERVICES_DIR:-}
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    if [ -f "$dir/redis.pid" ]; then
        kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    fi
    if [ -n "${_VEXORA_PG_BIN:-}" ] && [ -f "$dir/pg/data/postmaster.pid" ]; then
        _vexora_as_pg "$_VEXORA_PG_BIN/pg_ctl" -D "$dir/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    unset VEXORA_SERVICES_DIR
}

_vexora_services_start() {
    local missing=() dir port i
    command -v redis-server >/dev/null || missing+=(redis-server)
    [ -n "$(_vexora_pg_bin)" ] || missing+=(postgresql)
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "services: install ${missing[*]} (Debian packages) first" >&2
            return 1
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # The Debian package starts its own servers; ours are separate.
    dir=$(mktemp -d /tmp/vexora-services.XXXXXX) || return 1
    chmod 755 "$dir"
    export VEXORA_SERVICES_DIR=$dir
    trap _vexora_services_stop EXIT

    port=$(_vexora_free_port)
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes \
        --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --save "" --appendonly no || return 1
    for i in $(seq 50); do
        redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null || {
        echo "services: redis-server did not start" >&2
        return 1
    }
    export VEXORA_TEST_REDIS_URL="redis://127.0.0.1:$port/0"

    _VEXORA_PG_BIN=$(_vexora_pg_bin)
    mkdir -p "$dir/pg"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir/pg"
    _vexora_as_pg "$_VEXORA_PG_BIN/initdb" -D "$dir/pg/data" -U postgres \
        -A trust --no-sync >"$dir/pg/initdb.log" 2>&1 || {
        cat "$dir/pg/initdb.log" >&2
        return 1
    }
    port=$(_vexora_free_port)
    _vexora_as_pg "$_VEXORA_PG_BIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w \
        -o "-h 127.0.0.1 -p $port -k $dir/pg -F -c max_connections=200" start >/dev/null || {
        cat "$dir/pg/server.log" >&2
        return 1
    }
    export VEXORA_TEST_POSTGRES_DSN="postgresql://postgres@127.0.0.1:$port/postgres"
    echo "services: redis at $VEXORA_TEST_REDIS_URL, postgresql at $VEXORA_TEST_POSTGRES_DSN"
}

_vexora_services_start
