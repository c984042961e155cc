# syntax=docker/dockerfile:1

# mcpauthz and the example MCP server mcp-echo, static binaries on a
# distroless base with no shell, running as an unprivileged user.
#
#   docker build -t mcpauthz .
#   docker run --rm mcpauthz version
#   docker run --rm --entrypoint /usr/local/bin/mcp-echo mcpauthz

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mcpauthz ./cmd/mcpauthz && \
    go build -trimpath -ldflags "-s -w" -o /out/mcp-echo ./examples/mcp-echo

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mcpauthz /out/mcp-echo /usr/local/bin/
USER nonroot:nonroot
WORKDIR /home/nonroot
# 9191 ext_authz gRPC, 9192 forward-auth, 9193 identity API, 9194 admin,
# 8080 mcp-echo.
EXPOSE 9191 9192 9193 9194 8080
ENTRYPOINT ["/usr/local/bin/mcpauthz"]
CMD ["serve"]
