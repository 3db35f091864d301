# cairn in a container: one node, its data in a volume, peers on 7400 (TCP and UDP).
#
# There is no container engine on the machines cairn is developed on, so this file has been
# reviewed, not built: keep it simple enough to review. Build and run:
#   docker build -t cairn .
#   docker run -d --name cairn -p 7400:7400/tcp -p 7400:7400/udp -v cairn-data:/var/lib/cairn cairn
#   docker exec cairn cairn status
# `docker stop` waits 10 s before SIGKILL; cairn's graceful stop can take about 10 s (see
# deploy/cairn.service), so give it 20: `docker stop -t 20 cairn` (compose: stop_grace_period).

# Both stages on the same Debian release, so the binary links against the glibc it runs on.
ARG RUST_IMAGE=rust:1.95-slim-trixie
ARG RUNTIME_IMAGE=debian:trixie-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# --locked: exactly the versions in Cargo.lock. The registry cache only speeds up rebuilds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p cairn

FROM ${RUNTIME_IMAGE}
# A fixed, unprivileged user (uid 7400), so that a volume's files keep one owner across images.
RUN useradd --system --uid 7400 --user-group --home-dir /var/lib/cairn --no-create-home cairn \
    && install -d -o cairn -g cairn -m 0700 /var/lib/cairn
COPY --from=build /src/target/release/cairn /usr/local/bin/cairn
USER cairn
# node.key (the node's identity), items.redb and routing.snapshot: keep them across upgrades.
VOLUME /var/lib/cairn
# Peers: lookups in UDP datagrams, subscriptions and large values over TCP.
EXPOSE 7400/tcp
EXPOSE 7400/udp
# The API on the container's own loopback, on purpose, and not exposed: it signs, publishes
# and deletes with the node's key and has no authentication, so whoever reaches it acts as the
# node. Use it from inside (`docker exec cairn cairn put ...`), or run with --network host to
# have it on the host's loopback.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s CMD ["cairn", "status"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["cairn"]
CMD ["node", "--data-dir", "/var/lib/cairn", "--listen", "0.0.0.0:7400", "--api", "127.0.0.1:7401"]
