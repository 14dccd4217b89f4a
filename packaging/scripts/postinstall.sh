#!/bin/sh
# hemostat package, after install or upgrade: systemd learns about the unit. A first install does not
# start the service (it would act on every container at once, with the defaults); an upgrade restarts it
# when it runs.
set -e

[ -d /run/systemd/system ] || exit 0
systemctl daemon-reload >/dev/null 2>&1 || true
if systemctl is-active --quiet hemostat.service; then
  systemctl try-restart hemostat.service >/dev/null 2>&1 || true
else
  cat <<'MSG'
hemostat is installed but not started. Next:
  1. edit /etc/hemostat/hemostat.env (start with HEMOSTAT_DRY_RUN=true)
  2. hemostat doctor        checks Docker, Redis, cgroups, sinks and labels with that configuration
  3. systemctl enable --now hemostat
MSG
fi
exit 0
