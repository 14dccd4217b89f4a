#!/bin/sh
# hemostat package, before removal: stop and disable the service when the package goes away (deb:
# "remove"; rpm: $1 = 0), not on an upgrade.
set -e

case "$1" in
  remove|0) ;;
  *) exit 0 ;;
esac
[ -d /run/systemd/system ] || exit 0
systemctl disable --now hemostat.service >/dev/null 2>&1 || true
exit 0
