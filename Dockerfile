# The webapp image: supervisor and workers in one static binary.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/webapp ./cmd/webapp

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/webapp /webapp
# Same flags as `make run` (see cmd/stack), but listening on the container's
# interface; compose publishes the port on the host's loopback only.
ENV FORKWATCH_LISTEN=0.0.0.0:5000 \
    FORKWATCH_WORKERS=5 \
    FORKWATCH_APP_NAME=webapp
EXPOSE 5000
ENTRYPOINT ["/webapp"]
