# Build: the release binary on Debian's Rust image; run: a small Debian image as a non-root
# user. The web UI, templates and migrations are embedded in the binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin flowbot

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home flowbot
COPY --from=build /src/target/release/flowbot /usr/local/bin/flowbot
USER flowbot
WORKDIR /data
ENV FLOWBOT_DATA_DIR=/data FLOWBOT_BIND=0.0.0.0 FLOWBOT_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["flowbot", "--version"]
ENTRYPOINT ["flowbot"]
CMD ["serve"]
