# An application image whose entrypoint is respawnd exec: respawnd is PID 1,
# supervises /app/server, reaps orphans and exports metrics on its port.
#   docker build -f app.Dockerfile -t registry.example.com/example-app:1.0.0 .
ARG RESPAWND_IMAGE=ghcr.io/respawnd/respawnd:latest
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${RESPAWND_IMAGE} AS respawnd

FROM ${BASE_IMAGE}
COPY --from=respawnd /usr/bin/respawnd /usr/bin/respawnd
COPY server /app/server
# 8080: the app; 9847: respawnd's metrics (its --web.listen-address default).
EXPOSE 8080 9847
USER 65532:65532
ENTRYPOINT ["/usr/bin/respawnd", "exec", "--name=app", "--memory.max=200MiB", "--"]
CMD ["/app/server", "--listen=:8080"]
