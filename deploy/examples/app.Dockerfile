# An application image whose entrypoint is respawnd exec: respawnd is PID 1,
# supervises /app/server, reaps orphans and exports metrics on its port.
#   docker build -f app.Dockerfile -t registry.example.com/example-app:1.0.0 .
ARG RESPAWND_IMAGE=ghcr.io/respawnd/respawnd:latest
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${RESPAWND_IMAGE} AS respawnd

FROM ${BASE_IMAGE}
COPY --from=respawnd /usr/bin/respawnd /usr/bin/respawnd
COPY server /app/server
# 8080: the app; 8571: respawnd's metrics.
EXPOSE 8080 8571
USER 65532:65532
# respawnd exec serves metrics only when given --web.listen-address.
ENTRYPOINT ["/usr/bin/respawnd", "exec", "--name=app", "--web.listen-address=:8571", "--"]
CMD ["/app/server", "--listen=:8080"]
