# respawnd's container image.
#
#   export SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
#   docker buildx build \
#     --build-arg SOURCE_DATE_EPOCH \
#     --build-arg CREATED=$(date -u -d @$SOURCE_DATE_EPOCH +%Y-%m-%dT%H:%M:%SZ) \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --output type=docker,name=respawnd,rewrite-timestamp=true .
#
# The image serves two uses (deploy/README.md has both in full):
#   host agent:  docker run ... respawnd run --config /etc/respawnd/respawnd.yml
#   entrypoint:  COPY --from=respawnd /usr/bin/respawnd /usr/bin/respawnd into an
#                application image, then
#                ENTRYPOINT ["/usr/bin/respawnd", "exec", "--", "/app"]
#                respawnd is PID 1: it reaps orphans, forwards signals and exits
#                with the program's status.
#
# Reproducible: the same commit, base images and arguments give the same
# image. SOURCE_DATE_EPOCH (the commit's time) sets the image's creation
# time, and with rewrite-timestamp=true the files' times (BuildKit 0.13 and
# later); CREATED is the same instant for the created label. The binary
# carries the version, revision and branch only: no build user, no build
# date, no paths (-trimpath), no VCS stamp (-buildvcs=false: .git is not in
# the build context, and REVISION says the commit).
#
# Base images are build arguments, so the image also builds from a mirror or
# from images already present locally (--build-arg GO_IMAGE=..., BASE_IMAGE=...).
# Any image with a Go toolchain on PATH will do as GO_IMAGE; BASE_IMAGE needs
# nothing at all, respawnd is a static binary (scratch works; distroless/static
# adds /etc/passwd for user: switching, CA certificates and time zones).
# Pin them by digest, NAME:TAG@sha256:DIGEST, for a build that does not change
# when a tag moves: `docker buildx imagetools inspect NAME:TAG` prints the
# digest. The defaults below are tags until their digests are filled in.
ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:latest

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=unknown
ARG REVISION=unknown
ARG BRANCH=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# A static binary: CGO_ENABLED=0, version stamped the way promu does it.
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -buildvcs=false -o /out/respawnd \
      -ldflags "-s -w \
        -X 'github.com/prometheus/common/version.Version=${VERSION}' \
        -X 'github.com/prometheus/common/version.Revision=${REVISION}' \
        -X 'github.com/prometheus/common/version.Branch=${BRANCH}'" \
      ./cmd/respawnd

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED
# No LICENSE in the repository yet: NOASSERTION (SPDX) until one is chosen.
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="respawnd" \
      org.opencontainers.image.description="Keeps named programs alive, tells OOM kills apart from every other death and exports Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.source="https://github.com/respawnd/respawnd" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
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
