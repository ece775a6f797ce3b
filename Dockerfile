# respawnd's container image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t respawnd .
#
# The image serves two uses (deploy/README.md has both in full):
#   host agent:  docker run ... respawnd run --config /etc/respawnd/respawnd.yml
#   entrypoint:  COPY --from=respawnd /usr/bin/respawnd /usr/bin/respawnd into an
#                application image, then
#                ENTRYPOINT ["/usr/bin/respawnd", "exec", "--", "/app"]
#                respawnd is PID 1: it reaps orphans, forwards signals and exits
#                with the program's status.
#
# Base images are build arguments, so the image also builds from a mirror or
# from images already present locally (--build-arg GO_IMAGE=..., BASE_IMAGE=...).
# Any image with a Go toolchain on PATH will do as GO_IMAGE; BASE_IMAGE needs
# nothing at all, respawnd is a static binary (scratch works; distroless/static
# adds /etc/passwd for user: switching, CA certificates and time zones).

ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:latest

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=unknown
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_USER=unknown
ARG BUILD_DATE=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# A static binary: CGO_ENABLED=0, version stamped the way promu does it.
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -o /out/respawnd \
      -ldflags "-s -w \
        -X 'github.com/prometheus/common/version.Version=${VERSION}' \
        -X 'github.com/prometheus/common/version.Revision=${REVISION}' \
        -X 'github.com/prometheus/common/version.Branch=${BRANCH}' \
        -X 'github.com/prometheus/common/version.BuildUser=${BUILD_USER}' \
        -X 'github.com/prometheus/common/version.BuildDate=${BUILD_DATE}'" \
      ./cmd/respawnd

FROM ${BASE_IMAGE}
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="respawnd" \
      org.opencontainers.image.description="Keeps named programs alive, tells OOM kills apart from every other death and exports Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/respawnd/respawnd"
COPY --from=build /out/respawnd /usr/bin/respawnd
# Metrics (respawnd's --web.listen-address default).
EXPOSE 8571
# The host agent runs as root (the DaemonSet says so explicitly); everything
# else gets an unprivileged user by default.
USER 65532:65532
# respawnd stops its programs on SIGTERM and exits with their status.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/respawnd"]
CMD ["run"]
