# Outpost: a CDN edge caching node.
#   docker build --build-arg VERSION=$(git describe --tags --always) -t outpost .
#   docker run -p 8080:8080 -v outpost-cache:/var/cache/outpost outpost --origin https://origin.example
# With a configuration: -v /etc/outpost:/etc/outpost:ro ... outpost --config /etc/outpost/outpost.yaml
# (docker kill --signal=HUP reloads it; the HEALTHCHECK asks /readyz).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION is what `outpost version` and /status say.
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/outpost ./cmd/outpost \
 && mkdir -p /out/cache

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/outpost /usr/local/bin/outpost
# Owned by the non-root user, so a new named volume starts writable.
COPY --from=build --chown=65532:65532 /out/cache /var/cache/outpost
# The disk tier lives on a volume so the cache stays warm across restarts.
VOLUME ["/var/cache/outpost"]
USER nonroot:nonroot
EXPOSE 8080
# The image has no shell: the binary asks its own admin listener. The start
# period covers loading a large disk index.
HEALTHCHECK --interval=10s --timeout=4s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/outpost", "health", "--ready"]
ENTRYPOINT ["/usr/local/bin/outpost", "serve", "--cache-dir", "/var/cache/outpost"]
