# The proglogctl image: the static binary and nothing else. Build it with
# `make image`, which builds bin/proglogctl (CGO_ENABLED=0) first; there is no
# build stage, so no base image is ever pulled.
#
# A scratch image has no shell, no /tmp, no users and no CA bundle. proglogctl
# needs only its own CA, so the missing pieces are directories: the config
# directory (certificates and ACL, as gencert and genacl write them), the data
# directory and /tmp, each owned by the unprivileged user the image runs as,
# so that volumes mounted on them start out writable by it.
FROM scratch

COPY --chown=65532:65532 bin/.emptydir /etc/proglog
COPY --chown=65532:65532 bin/.emptydir /var/lib/proglog
COPY --chown=65532:65532 bin/.emptydir /tmp
COPY bin/proglogctl /proglogctl

# Every command finds the config directory ($XDG_CONFIG_HOME/proglog) and the
# data directory ($XDG_DATA_HOME/proglog) at fixed paths. serve listens on all
# interfaces; give it --advertise-host (PROGLOG_ADVERTISE_HOST), the name
# other nodes and clients reach it by, and a --node-name.
ENV XDG_CONFIG_HOME=/etc \
    XDG_DATA_HOME=/var/lib \
    PROGLOG_BIND_ADDR=0.0.0.0:8401 \
    TMPDIR=/tmp

USER 65532:65532
WORKDIR /var/lib/proglog
VOLUME ["/var/lib/proglog"]
# 8400: gRPC clients and Raft peers; 8401: Serf gossip (TCP and UDP).
EXPOSE 8400/tcp 8401/tcp 8401/udp

ENTRYPOINT ["/proglogctl"]
CMD ["serve"]
