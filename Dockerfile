# Outpost: a CDN edge caching node.
#   docker build -t outpost .
#   docker run -p 8080:8080 -v outpost-cache:/var/cache/outpost outpost --origin https://origin.example
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
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
ENTRYPOINT ["/usr/local/bin/outpost", "serve", "--cache-dir", "/var/cache/outpost"]
