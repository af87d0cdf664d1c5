# canary-gate controller image: `docker build -t canary-gate:0.1.0 .`

# Build stage: compile a static (musl) canary-gate binary.
FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
# Dependencies first, so this layer stays cached until Cargo.toml or Cargo.lock change.
# (Cargo reads the [[bench]] targets declared in Cargo.toml when it loads the manifest, hence benches/.)
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN cargo fetch --locked --target x86_64-unknown-linux-musl
# Then the sources: src/ and the analysis template src/demo embeds with include_str!.
COPY src ./src
COPY analysis-templates ./analysis-templates
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin canary-gate

# Final stage: only the binary, on distroless static (no shell, no package manager), as the
# image's non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/canary-gate /canary-gate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/canary-gate"]
CMD ["controller"]
