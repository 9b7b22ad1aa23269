# A Swarm node for stackctl's integration tests: Debian's Docker engine inside a container
# (Docker-in-Docker without --privileged; see tests/integration/swarm_cluster.py for the caps).
FROM stackctl-local/base:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      docker.io iptables ca-certificates socat procps iproute2 \
 && rm -rf /var/lib/apt/lists/*
COPY node-entrypoint.sh /usr/local/bin/node-entrypoint.sh
RUN chmod 0755 /usr/local/bin/node-entrypoint.sh
VOLUME /var/lib/docker
EXPOSE 2375
ENTRYPOINT ["/usr/local/bin/node-entrypoint.sh"]
