#!/usr/bin/env bash
# Installs batch-poller as a systemd service on this host. Run as root, from a checkout:
#   sudo deploy/install.sh            # installs into /opt/batch-poller (a virtualenv)
# It creates /etc/batch-poller/config.toml from the example (an existing one is kept), installs
# the unit with ExecStart pointing at the installed console script, and reloads systemd.
set -euo pipefail

PREFIX=${PREFIX:-/opt/batch-poller}
PYTHON=${PYTHON:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (it writes to $PREFIX, /etc and /etc/systemd/system)" >&2
  exit 1
fi

"$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/pip" install --quiet --upgrade pip
"$PREFIX/bin/pip" install --quiet "$here"
# PostgreSQL support, for a database shared by several hosts.
"$PREFIX/bin/pip" install --quiet "$here[postgres]"

install -d -m 0755 /etc/batch-poller
if [ ! -e /etc/batch-poller/config.toml ]; then
  install -m 0644 "$here/config.example.toml" /etc/batch-poller/config.toml
  echo "created /etc/batch-poller/config.toml: edit [aws], [cleanup] and [pricing]"
else
  echo "kept the existing /etc/batch-poller/config.toml"
fi

sed "s#/usr/local/bin/batch-poller#$PREFIX/bin/batch-poller#" "$here/batch-poller.service" \
  > /etc/systemd/system/batch-poller.service
chmod 0644 /etc/systemd/system/batch-poller.service
systemctl daemon-reload

"$PREFIX/bin/batch-poller" --config /etc/batch-poller/config.toml config check

cat <<NEXT

Installed. Next:
  sudoedit /etc/batch-poller/config.toml          # region, managed prefixes, prices
  systemctl enable --now batch-poller             # start now and at boot
  systemctl status batch-poller                   # READY, and live counts in Status:
  $PREFIX/bin/batch-poller --config /etc/batch-poller/config.toml track JOB_ARN --input-prefix s3://bucket/folder/
  journalctl -u batch-poller -f                   # the log; see deploy/README.md for filters
NEXT
