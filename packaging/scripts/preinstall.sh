#!/bin/sh
# hemostat package, before install or upgrade: the dedicated system user hemostat (no login, no home
# outside its state directory), in the docker group so it can reach the engine. The docker group is made
# when Docker is not installed yet; Docker's own packages reuse an existing group.
set -e

nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/sbin/nologin

getent group docker >/dev/null 2>&1 || groupadd --system docker
getent group hemostat >/dev/null 2>&1 || groupadd --system hemostat
if getent passwd hemostat >/dev/null 2>&1; then
  usermod --append --groups docker hemostat
else
  useradd --system --gid hemostat --groups docker --home-dir /var/lib/hemostat --no-create-home \
    --shell "$nologin" --comment "hemostat container healer" hemostat
fi
exit 0
