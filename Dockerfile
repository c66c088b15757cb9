# syntax=docker/dockerfile:1
# The Custos image: the manager, custos-sts and custos-gateway (the chart
# runs the latter two with command /custos-sts and /custos-gateway), static binaries on a distroless base, running
# as a non-root user, with no shell or package manager in the final image.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Dependencies first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/manager ./cmd/manager && \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/custos-sts ./cmd/custos-sts && \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/custos-gateway ./cmd/custos-gateway

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/manager /manager
COPY --from=build /out/custos-sts /custos-sts
COPY --from=build /out/custos-gateway /custos-gateway
USER 65532:65532
ENTRYPOINT ["/manager"]
