# hemostat's release image, built by goreleaser (dockers_v2, one image per platform of the manifest).
# The build context holds the static binaries goreleaser built (CGO_ENABLED=0) at <os>/<arch>/hemostat;
# nothing is compiled here and nothing is pulled: FROM scratch builds offline. The binary embeds its CA
# roots and zoneinfo (cmd/embedded_data.go), so the image needs no other file.
#
#   docker run --rm hemostat version
#   examples/compose/ runs it next to Redis, a Docker socket proxy, Prometheus and Grafana.
FROM scratch
ARG TARGETPLATFORM
COPY ${TARGETPLATFORM}/hemostat /usr/bin/hemostat
# hemostat.self=true: the monitor never watches hemostat's own containers and the responder never
# touches them.
LABEL hemostat.self="true" \
      org.opencontainers.image.title="hemostat" \
      org.opencontainers.image.description="Heal unhealthy Docker containers carefully" \
      org.opencontainers.image.licenses="MIT"
# A non-root user with no entry in /etc/passwd (there is none). Reaching the Docker engine needs either a
# socket proxy over TCP (DOCKER_HOST=tcp://...) or the socket's group: --group-add $(stat -c %g /var/run/docker.sock).
USER 65532:65532
# The embedded store keeps its state in $XDG_STATE_HOME/hemostat when no Redis is configured: a directory
# the user owns (mount a volume there to keep it).
COPY --chown=65532:65532 packaging/image/state/ /var/lib/hemostat/
ENV XDG_STATE_HOME=/var/lib
WORKDIR /var/lib/hemostat
EXPOSE 4366
ENTRYPOINT ["/usr/bin/hemostat"]
CMD ["run"]
