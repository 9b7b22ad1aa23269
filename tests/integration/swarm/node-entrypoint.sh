#!/bin/sh
# Entry point of a Swarm node container.
# 1. Forward 127.0.0.1:5000 to the shared registry (alias `registry` on the cluster's bridge
#    network), so an image pushed by the host as 127.0.0.1:5000/<name> is pulled under the
#    very same name on every node (a localhost registry needs no TLS and no
#    insecure-registries setting).
# 2. Run the node's own Docker engine on its unix socket and on tcp :2375 (plain, reachable
#    only on the test bridge network); extra dockerd arguments come from the command line
#    (e.g. --node-generic-resource gpu=GPU-0 on the GPU node).
set -eu
socat TCP-LISTEN:5000,bind=127.0.0.1,fork,reuseaddr TCP:registry:5000 &
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid 2>/dev/null || true
exec dockerd --host unix:///var/run/docker.sock --host tcp://0.0.0.0:2375 \
    --tls=false "$@"
