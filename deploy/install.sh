#!/usr/bin/env bash
# Installs batch-poller as a systemd service on this host, upgrades it in place, or removes it.
# Run as root, from a checkout:
#   sudo deploy/install.sh                        # install, or upgrade (see --help)
#   sudo deploy/install.sh --uninstall [--purge]  # remove
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: deploy/install.sh [--uninstall [--purge]] [--help]

Without an option, installs batch-poller as a systemd service, or upgrades it in place:
  - a virtualenv in $PREFIX with the package, plus its PostgreSQL driver (the postgres extra)
    when the configured database URL (config file or the drop-in's EnvironmentFile=) is
    postgresql://;
  - /etc/batch-poller/config.toml (mode 0640, root:root) from config.example.toml, unless it
    exists (an existing one is kept as it is);
  - the unit /etc/systemd/system/batch-poller.service, written only once
    `batch-poller config check` accepts the configuration (otherwise it stops with the check's
    message, leaving the installed unit as it was); a running service is then restarted;
  - /etc/systemd/system/batch-poller.service.d/local.conf, a commented example for local
    settings (EnvironmentFile=, LoadCredential=), created once and never overwritten;
  - the documentation in $PREFIX/share/doc/batch-poller/.

Options:
  --uninstall  stop and disable the service, remove the unit and the virtualenv; keep
               /etc/batch-poller, the drop-in and /var/lib/batch-poller (the database)
  --purge      with --uninstall: remove those too
  --help       print this and exit

Environment:
  PREFIX     the virtualenv (default $ROOT/opt/batch-poller)
  PYTHON     the interpreter that creates it (default python3)
  VENV_ARGS  more arguments for `python -m venv`, e.g. --system-site-packages
  PIP_ARGS   more arguments for `pip install`, e.g. --index-url URL
  ROOT       a directory prefixed to every path written under /etc, /opt and /var (default
             empty; for tests)
  SYSTEMCTL  the systemctl command (default systemctl)
  ALLOW_NON_ROOT=1  run as another user than root (for tests, with ROOT set)
USAGE
}

say() { printf '%s\n' "$*"; }
fail() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

action=install
purge=0
for argument in "$@"; do
  case "$argument" in
    --uninstall) action=uninstall ;;
    --purge) purge=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      printf 'install.sh: unknown argument %s\n\n' "$argument" >&2
      usage >&2
      exit 2
      ;;
  esac
done
if [ "$purge" = 1 ] && [ "$action" != uninstall ]; then
  printf 'install.sh: --purge goes with --uninstall\n' >&2
  exit 2
fi

ROOT=${ROOT:-}
ROOT=${ROOT%/}
PREFIX=${PREFIX:-$ROOT/opt/batch-poller}
PYTHON=${PYTHON:-python3}
SYSTEMCTL=${SYSTEMCTL:-systemctl}
read -r -a venv_args <<<"${VENV_ARGS:-}"
read -r -a pip_args <<<"${PIP_ARGS:-}"
here=$(cd "$(dirname "$0")/.." && pwd)

etc_dir="$ROOT/etc/batch-poller"
config="$etc_dir/config.toml"
unit_dir="$ROOT/etc/systemd/system"
unit="$unit_dir/batch-poller.service"
dropin_dir="$unit_dir/batch-poller.service.d"
dropin="$dropin_dir/local.conf"
docs="$PREFIX/share/doc/batch-poller"
# Under DynamicUser=yes the state lives in /var/lib/private/batch-poller, linked from here.
state_dirs=("$ROOT/var/lib/batch-poller" "$ROOT/var/lib/private/batch-poller")

if [ "$(id -u)" -eq 0 ]; then
  owner=(-o root -g root)
elif [ "${ALLOW_NON_ROOT:-0}" = 1 ]; then
  owner=()
else
  fail "run as root (it writes to $PREFIX, /etc/batch-poller and /etc/systemd/system)"
fi
case "$PREFIX" in
  /*) ;;
  *) fail "PREFIX must be an absolute path: $PREFIX" ;;
esac
case "$PREFIX" in
  *[[:space:]]*) fail "PREFIX must not contain spaces (it goes into the unit's ExecStart=)" ;;
esac

uninstall() {
  if [ -e "$unit" ]; then
    "$SYSTEMCTL" stop batch-poller || true
    "$SYSTEMCTL" disable batch-poller || true
    rm -f -- "$unit"
    "$SYSTEMCTL" daemon-reload
    say "removed the service and $unit"
  else
    say "no unit at $unit"
  fi
  if [ -f "$PREFIX/pyvenv.cfg" ]; then
    rm -rf -- "$PREFIX"
    say "removed the virtualenv $PREFIX"
  elif [ -e "$PREFIX" ]; then
    say "left $PREFIX alone: it is not a virtualenv"
  fi
  if [ "$purge" = 1 ]; then
    rm -rf -- "$etc_dir" "$dropin_dir" "${state_dirs[@]}"
    say "purged $etc_dir, $dropin_dir and ${state_dirs[0]} (the database)"
  else
    say "kept $etc_dir, $dropin_dir and ${state_dirs[0]} (the database): --purge removes them"
  fi
}

# BATCH_POLLER_* assignments of the environment files the drop-ins name, one NAME=value a line,
# so that the check and the database found here are those the service will have.
service_variables() {
  local conf line file
  for conf in "$dropin_dir"/*.conf; do
    [ -f "$conf" ] || continue
    while IFS= read -r line || [ -n "$line" ]; do
      line=${line#"${line%%[![:space:]]*}"}
      case "$line" in
        EnvironmentFile=?*) ;;
        *) continue ;;
      esac
      file=${line#EnvironmentFile=}
      file="$ROOT${file#-}"
      [ -r "$file" ] || continue
      sed -n -E \
        -e "s/^[[:space:]]*(BATCH_POLLER_[A-Za-z0-9_]+)=[[:space:]]*\"(.*)\"[[:space:]]*$/\\1=\\2/p;t" \
        -e "s/^[[:space:]]*(BATCH_POLLER_[A-Za-z0-9_]+)=[[:space:]]*'(.*)'[[:space:]]*$/\\1=\\2/p;t" \
        -e "s/^[[:space:]]*(BATCH_POLLER_[A-Za-z0-9_]+)=[[:space:]]*(.*)$/\\1=\\2/p" \
        "$file"
    done <"$conf"
  done
}

# Runs a command with those variables, exported rather than passed as arguments: a password in
# them never shows in the process list.
with_service_env() {
  (
    for assignment in "${service_env[@]}"; do
      export "${assignment?}"
    done
    exec "$@"
  )
}

# The database URL the service will use: the environment files', else the settings' as
# `config show --json` tells them, else the [database] url line of the file.
database_url() {
  local assignment url=""
  for assignment in "${service_env[@]}"; do
    case "$assignment" in
      BATCH_POLLER_DATABASE__URL=*) url=${assignment#*=} ;;
    esac
  done
  if [ -z "$url" ]; then
    url=$(with_service_env "$PREFIX/bin/batch-poller" --config "$config" config show --json \
      2>/dev/null | "$PREFIX/bin/python" -c \
      'import json, sys; print(json.load(sys.stdin)["database"]["url"])' 2>/dev/null) || url=""
  fi
  if [ -z "$url" ]; then
    url=$(awk '
      /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]]/, "", section); next }
      section == "[database]" && /^[[:space:]]*url[[:space:]]*=/ {
        sub(/^[^=]*=[[:space:]]*/, ""); print; exit
      }' "$config") || url=""
  fi
  url=${url#[\"\']}
  printf '%s\n' "$url"
}

write_dropin() {
  install -d -m 0755 "${owner[@]}" "$dropin_dir"
  cat >"$dropin" <<DROPIN
# Local settings of batch-poller.service. This file is yours: deploy/install.sh created it and
# never overwrites it, while it replaces the unit itself on every upgrade. After a change:
#   systemctl daemon-reload && systemctl restart batch-poller
# After adding a PostgreSQL URL, run deploy/install.sh again: it installs the driver.
# How each secret reaches the service: $docs/deploy/README.md
[Service]
# AWS credentials, when no instance profile (EC2) or task role (ECS) gives them: a file only
# root can read (chmod 0600) with AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=...
#EnvironmentFile=/etc/batch-poller/aws.env
# ... or a file in the format of ~/.aws/credentials, handed over by systemd:
#LoadCredential=aws-credentials:/etc/batch-poller/aws-credentials
#Environment=AWS_SHARED_CREDENTIALS_FILE=%d/aws-credentials

# PostgreSQL: a file only root can read (chmod 0600) with the URL and its password,
# BATCH_POLLER_DATABASE__URL=postgresql://batch_poller:PASSWORD@db.internal:5432/batch_poller
#EnvironmentFile=/etc/batch-poller/database.env

# The admin API's bearer token: a file only root can read, holding the token alone.
#LoadCredential=admin-token:/etc/batch-poller/admin-token
DROPIN
  chmod 0644 "$dropin"
}

install_service() {
  local upgrade=0 rc=0 check="" url unit_new escaped what
  [ -e "$unit" ] && upgrade=1

  say "installing batch-poller from $here into $PREFIX"
  "$PYTHON" -m venv "${venv_args[@]}" "$PREFIX"
  "$PREFIX/bin/pip" install --quiet "${pip_args[@]}" --upgrade pip
  "$PREFIX/bin/pip" install --quiet "${pip_args[@]}" "$here"

  install -d -m 0755 "${owner[@]}" "$etc_dir"
  if [ ! -e "$config" ]; then
    install -m 0640 "${owner[@]}" "$here/config.example.toml" "$config"
    say "created $config (0640): edit [aws], [cleanup] and [pricing]"
  else
    say "kept the existing $config"
    case "$(stat -c %a "$config")" in
      *[1-7]) say "note: every user can read $config; it may hold secrets: chmod 0640 it" ;;
    esac
  fi
  if [ ! -e "$dropin" ]; then
    write_dropin
    say "created $dropin: put EnvironmentFile= and LoadCredential= lines there"
  else
    say "kept the existing $dropin"
  fi

  mapfile -t service_env < <(service_variables)
  url=$(database_url)
  case "${url,,}" in
    postgres*)
      say "the database is PostgreSQL: installing the postgres extra (its driver)"
      "$PREFIX/bin/pip" install --quiet "${pip_args[@]}" "$here[postgres]"
      ;;
    *) say "the database is SQLite: no driver to add" ;;
  esac

  install -d -m 0755 "$docs" "$docs/deploy"
  install -m 0644 "$here/README.md" "$here/config.example.toml" "$docs/"
  install -m 0644 "$here/deploy/README.md" "$here/deploy/iam-policy.json" "$docs/deploy/"

  # The configuration as the new version reads it, before the unit that would run it.
  check=$(with_service_env "$PREFIX/bin/batch-poller" --config "$config" config check 2>&1) ||
    rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '%s\n' "$check" >&2
    if [ "$upgrade" = 1 ]; then
      what="the unit was left as it was and the service was not restarted (a restart would run"
      what="$what the new version in $PREFIX)"
    else
      what="no unit was installed"
    fi
    printf 'install.sh: %s does not pass the check above: %s. Fix it, then run install.sh again.\n' \
      "$config" "$what" >&2
    exit "$rc"
  fi
  say "$check"

  # The unit, with this virtualenv's paths, replaced in one step.
  escaped=$(printf '%s' "$PREFIX" | sed 's/[\\&#]/\\&/g')
  install -d -m 0755 "$unit_dir"
  unit_new=$(mktemp "$unit_dir/.batch-poller.service.XXXXXX")
  sed -e "s#/usr/local/bin/batch-poller#$escaped/bin/batch-poller#" \
    -e "s#file:/opt/batch-poller/#file:$escaped/#" \
    "$here/batch-poller.service" >"$unit_new"
  chmod 0644 "$unit_new"
  mv -f -- "$unit_new" "$unit"
  "$SYSTEMCTL" daemon-reload
  say "installed $unit"

  if [ "$upgrade" = 1 ]; then
    if "$SYSTEMCTL" is-active --quiet batch-poller; then
      "$SYSTEMCTL" restart batch-poller
      say "restarted batch-poller: it runs the new version"
    else
      say "upgraded; batch-poller is not running: systemctl start batch-poller starts it"
    fi
    return
  fi
  cat <<NEXT

Installed. Next:
  sudoedit $config    # region, managed prefixes, prices
  sudoedit $dropin    # credentials, database URL, admin token
  systemctl enable --now batch-poller    # start now and at boot
  systemctl status batch-poller          # READY, and live counts in Status:
  $PREFIX/bin/batch-poller --config $config track JOB_ARN --input-prefix s3://bucket/folder/
  journalctl -u batch-poller -f          # the log
See $docs/deploy/README.md for credentials, PostgreSQL and everyday commands.
NEXT
}

case "$action" in
  install) install_service ;;
  uninstall) uninstall ;;
esac
