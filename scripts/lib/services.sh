# Shared by scripts/up and scripts/test: provisions PostgreSQL and Redis on loopback,
# without systemd, installing them from Debian packages when they are missing.
# Everything the scripts create lives under .local/ (git-ignored).
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local"
mkdir -p "$LOCAL"

PG_PORT="${CATALYTIC_PG_PORT:-5432}"
REDIS_PORT="${CATALYTIC_REDIS_PORT:-6379}"

log() { printf '\033[1m[catalytic]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* yourself"
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  log "installing $* (Debian packages)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The directory holding initdb/pg_ctl/postgres, installing PostgreSQL when absent.
pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/pg_ctl" ]; then printf '%s' "$d"; return; fi
  done
  if command -v pg_ctl >/dev/null; then dirname "$(command -v pg_ctl)"; return; fi
  apt_install postgresql postgresql-contrib
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/pg_ctl" ]; then printf '%s' "$d"; return; fi
  done
  die "PostgreSQL installed but pg_ctl not found"
}

# Runs a command as the owner of the project's PostgreSQL data directory
# (initdb refuses to run as root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Where the project's cluster lives: .local/pg, unless the checkout sits where the
# postgres user cannot reach (a root-owned 0700 home, say): then a folder under /var/tmp
# named after the checkout.
pg_dir() {
  PG_DIR="$LOCAL/pg"
  if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 \
      && ! runuser -u postgres -- test -x "$LOCAL" 2>/dev/null; then
    PG_DIR="/var/tmp/catalytic-pg-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
  fi
}

ensure_postgres() {
  local bindir data pwfile
  bindir="$(pg_bindir)"
  command -v psql >/dev/null || apt_install postgresql-client
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin postgres
  fi
  pg_dir
  data="$PG_DIR/data"
  pwfile="$PG_DIR/superuser-password"
  if [ ! -f "$pwfile" ]; then
    mkdir -p "$PG_DIR"
    head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$pwfile"
  fi
  PG_PASSWORD="$(cat "$pwfile")"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$PG_DIR"; chmod 700 "$PG_DIR"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in $data"
    as_pg "$bindir/initdb" -D "$data" -U postgres --pwfile="$pwfile" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  # The port our cluster last ran on; another server already on it (a distribution's
  # own cluster, say) moves ours to the next free port.
  if [ -z "${CATALYTIC_PG_PORT:-}" ] && [ -f "$PG_DIR/port" ]; then PG_PORT="$(cat "$PG_DIR/port")"; fi
  if ! PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    if ! as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      while (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; do
        log "port $PG_PORT is taken by another server; trying $((PG_PORT + 1))"
        PG_PORT=$((PG_PORT + 1))
      done
    fi
    echo "$PG_PORT" > "$PG_DIR/port"
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_pg "$bindir/pg_ctl" -D "$data" -l "$PG_DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=300 -c fsync=${CATALYTIC_PG_FSYNC:-on}" start >/dev/null \
      || { tail -20 "$PG_DIR/server.log" >&2; die "PostgreSQL did not start (log: $PG_DIR/server.log)"; }
  fi
  PG_ADMIN_URL="postgres://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
  export PG_ADMIN_URL PG_PASSWORD
}

# Creates database $1 when it does not exist; prints its URL.
ensure_database() {
  local db="$1"
  if ! PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc \
      "select 1 from pg_database where datname = '$db'" | grep -q 1; then
    log "creating database $db"
    PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "create database \"$db\"" >/dev/null
  fi
  printf 'postgres://postgres:%s@127.0.0.1:%s/%s' "$PG_PASSWORD" "$PG_PORT" "$db"
}

ensure_redis() {
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$LOCAL/redis"
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$LOCAL/redis" \
    --appendonly yes --appendfsync everysec --save '' \
    --logfile "$LOCAL/redis/redis.log" --pidfile "$LOCAL/redis/redis.pid" >/dev/null
  local i
  for i in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return
    sleep 0.1
  done
  die "Redis did not start (log: $LOCAL/redis/redis.log)"
}

# Development RS256 key pair under .local/keys, generated when absent.
ensure_jwt_keys() {
  local dir="$LOCAL/keys"
  mkdir -p "$dir"
  if [ ! -f "$dir/jwt-private.pem" ]; then
    command -v openssl >/dev/null || apt_install openssl
    log "generating a development RS256 key pair in $dir"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/jwt-private.pem" 2>/dev/null
    openssl pkey -in "$dir/jwt-private.pem" -pubout -out "$dir/jwt-public.pem"
    chmod 600 "$dir/jwt-private.pem"
  fi
  JWT_PRIVATE_KEY_PATH="$dir/jwt-private.pem"
  JWT_PUBLIC_KEY_PATH="$dir/jwt-public.pem"
  export JWT_PRIVATE_KEY_PATH JWT_PUBLIC_KEY_PATH
}

# A Python virtual environment of the project's, for the SMTP sink and test tools.
ensure_venv() {
  local venv="$LOCAL/venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
  fi
  if [ "$#" -gt 0 ]; then
    local missing=()
    local pkg
    for pkg in "$@"; do
      "$venv/bin/pip" show "${pkg%%[=<>]*}" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
      log "pip install ${missing[*]}"
      "$venv/bin/pip" install -q "${missing[@]}"
    fi
  fi
  VENV="$venv"
  export VENV
}

# The local SMTP sink (aiosmtpd in the project's venv, scripts/lib/smtp_sink.py): every
# accepted message becomes a file in MAILDIR/new/. Starts it on 127.0.0.1:PORT unless
# something already listens there; sets SMTP_SINK_PID when this call started it.
# Usage: ensure_smtp_sink [PORT (1025)] [MAILDIR (.local/mail)]
ensure_smtp_sink() {
  local port="${1:-1025}" maildir="${2:-$LOCAL/mail}"
  ensure_venv aiosmtpd
  SMTP_SINK_SCRIPT="$ROOT/scripts/lib/smtp_sink.py"
  SMTP_SINK_PORT="$port"
  SMTP_SINK_MAILDIR="$maildir"
  SMTP_SINK_PID=""
  export SMTP_SINK_SCRIPT SMTP_SINK_PORT SMTP_SINK_MAILDIR
  if smtp_listening "$port"; then
    log "an SMTP server already listens on 127.0.0.1:$port; using it"
    return
  fi
  mkdir -p "$LOCAL/logs" "$maildir"
  log "starting the SMTP sink on 127.0.0.1:$port (mails in $maildir/new/)"
  "$VENV/bin/python" "$SMTP_SINK_SCRIPT" --host 127.0.0.1 --port "$port" --maildir "$maildir" \
    >>"$LOCAL/logs/smtp-sink.log" 2>&1 &
  SMTP_SINK_PID=$!
  echo "$SMTP_SINK_PID" > "$LOCAL/smtp-sink.pid"
  local i
  for i in $(seq 1 100); do
    smtp_listening "$port" && return
    kill -0 "$SMTP_SINK_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$LOCAL/logs/smtp-sink.log" >&2
  die "the SMTP sink did not start (log: $LOCAL/logs/smtp-sink.log)"
}

# Stops the SMTP sink that ensure_smtp_sink started (its pid is in .local/smtp-sink.pid).
stop_smtp_sink() {
  local pidfile="$LOCAL/smtp-sink.pid"
  [ -f "$pidfile" ] || return 0
  kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
smtp_listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
