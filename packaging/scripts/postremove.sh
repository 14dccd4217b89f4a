#!/bin/sh
# hemostat package, after removal: systemd forgets the unit. The user, /etc/hemostat and the state in
# /var/lib/hemostat stay (the audit trail may be there); on a deb purge the state directory goes too.
set -e

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = "purge" ]; then
  rm -rf /var/lib/hemostat
fi
exit 0
