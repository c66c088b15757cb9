# Custos — the two commands a user needs are `make dev` and `make test`.
# `make help` lists the rest.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO ?= go
CONTROLLER_GEN := $(GO) tool controller-gen
# Builds (once) and prints the directory of kube-apiserver, etcd and kubectl.
CONTROLPLANE := hack/controlplane.sh
# Builds (once) and prints the path of the helm binary the chart tests use.
HELM := hack/helm.sh
# Builds (once) and prints the path of kwok, which fakes the e2e cluster's
# nodes and pods; its Stage files go beside it.
KWOK := hack/kwok.sh
PROMTOOL := hack/promtool.sh
# The binaries of the whole cluster make e2e runs on: the control plane, and
# the controller manager and scheduler that make it a cluster.
CLUSTER := kube-apiserver etcd kubectl kube-controller-manager kube-scheduler
# Generated files `make verify` holds against what is committed.
GENERATED := api config charts/custos/crds charts/custos/files

##@ Use

# The packages make test runs with the race detector: their tests start no
# control plane, but for internal/gateway's approval test, which starts one
# of its own. Every other package runs against a real API server.
UNIT_PKGS := ./api/... ./cmd/custos-audit/... ./cmd/custos-gateway/... ./cmd/manager/... ./internal/audit/... ./internal/boundary/... \
	./internal/evaluate/... ./internal/gateway/... ./internal/identity/... ./internal/imageverify/... ./internal/netpol/... \
	./internal/pii/... ./internal/policy/... ./internal/sts ./internal/toolschema/... ./internal/tracing/... ./internal/webhook/... \
	./internal/workload/... ./test/fixtures/... ./test/imagetest/... ./test/leasedoubles/...

.PHONY: dev
dev: build cluster kwok ## Run Custos locally: a cluster with nodes in three regions, the manager, custos-sts, an identity provider, the samples. Ctrl-C stops everything.
	$(GO) build -o bin/custos-dev ./hack/dev
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE) $(CLUSTER))" KWOK="$$($(KWOK))" bin/custos-dev

.PHONY: test
test: cluster helm kwok promtool ## Run every test: the unit packages with the race detector, the rest against a real kube-apiserver and etcd (make dev's on a whole local cluster).
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE))" $(GO) test -race -count=1 $(UNIT_PKGS)
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE) $(CLUSTER))" HELM="$$($(HELM))" KWOK="$$($(KWOK))" PROMTOOL="$$($(PROMTOOL))" \
		$(GO) test -count=1 $$($(GO) list ./... | grep -v -x -F "$$($(GO) list $(UNIT_PKGS))")

.PHONY: e2e
e2e: cluster helm kwok ## Walk the users' journeys (helm, kubectl) on a whole local cluster: controllers, scheduler, kwok nodes.
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE) $(CLUSTER))" HELM="$$($(HELM))" KWOK="$$($(KWOK))" \
		$(GO) test -tags e2e ./test/e2e/ -count=1 -v -timeout 20m

##@ Develop

.PHONY: build
build: ## Build the manager, custos-sts and custos-gateway into bin/.
	$(GO) build -o bin/manager ./cmd/manager
	$(GO) build -o bin/custos-sts ./cmd/custos-sts
	$(GO) build -o bin/custos-gateway ./cmd/custos-gateway

.PHONY: controlplane
controlplane: ## Build kube-apiserver, etcd and kubectl into bin/k8s/ (only when missing).
	$(CONTROLPLANE) >/dev/null

.PHONY: helm
helm: ## Build helm, for the chart tests, into bin/tools/ (only when missing).
	$(HELM) >/dev/null

.PHONY: promtool
promtool: ## Fetch promtool, for the alerting rules' tests, from Debian's prometheus package into bin/tools/ (only when missing).
	$(PROMTOOL) >/dev/null

.PHONY: kwok
kwok: ## Build kwok and its stages, for make e2e, into bin/tools/ (only when missing).
	$(KWOK) >/dev/null

.PHONY: cluster
cluster: ## Build kube-controller-manager and kube-scheduler too, for make e2e, into bin/k8s/ (only when missing).
	$(CONTROLPLANE) $(CLUSTER) >/dev/null

# Flags for hack/bench, e.g. make bench BENCH_ARGS="-agents 2000 -concurrency 8".
BENCH_ARGS ?=

.PHONY: bench
bench: build controlplane ## Time Custos onboarding agents against a plain apply loop (BENCH_ARGS=...).
	$(GO) build -o bin/custos-bench ./hack/bench
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE))" bin/custos-bench $(BENCH_ARGS)

.PHONY: bench-admission
bench-admission: build controlplane ## Time agent pod creates (pod guard) and Agent creates with Custos's webhooks against no-op webhooks and none (BENCH_ARGS=...).
	$(GO) build -o bin/custos-bench ./hack/bench
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE))" bin/custos-bench -mode admission $(BENCH_ARGS)

.PHONY: bench-audit
bench-audit: ## Time the audit segment store against a plain fsynced file, and verifying 1,000,000 records.
	$(GO) build -o bin/custos-bench ./hack/bench
	bin/custos-bench -mode audit -- $(BENCH_ARGS)

.PHONY: bench-lease
bench-lease: controlplane ## Time issuing a kubernetesToken lease against a raw TokenRequest.
	$(GO) build -o bin/custos-bench ./hack/bench
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE))" bin/custos-bench -mode lease

.PHONY: bench-memory
bench-memory: build controlplane ## Measure the manager's RSS with 10,000 unrelated Secrets and ConfigMaps in the cluster against without them (BENCH_ARGS=...).
	$(GO) build -o bin/custos-bench ./hack/bench
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE))" bin/custos-bench -mode memory $(BENCH_ARGS)

.PHONY: bench-sts
bench-sts: controlplane ## Time custos-sts token exchanges (TokenReview cache warm and cold) against a floor endpoint, at 1, 10 and 50 clients (BENCH_ARGS=...).
	$(GO) build -o bin/custos-bench ./hack/bench
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE))" bin/custos-bench -mode sts $(BENCH_ARGS)

.PHONY: bench-gateway
bench-gateway: ## Time MCP tool calls through custos-gateway (every check on) against the same calls made directly, at 1, 16 and 64 connections; the cost of each stage; 1,000 facades' memory (BENCH_ARGS="-duration 3s -turns 3 -concurrency 1,16,64 -cpuprofile FILE").
	$(GO) build -o bin/custos-bench ./hack/bench
	bin/custos-bench -mode gateway -- $(BENCH_ARGS)

.PHONY: bench-approval
bench-approval: controlplane ## Race 4 consumers of each of 10,000 approved ApprovalRequests (exactly one may run), time approval to run held and on retry, and count an approval's objects and bytes (BENCH_ARGS="-trials 500 -consumers 4 -samples 200").
	$(GO) build -o bin/custos-bench-approval ./hack/bench/approval
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE))" bin/custos-bench-approval -trials 10000 $(BENCH_ARGS)

.PHONY: bench-risk
bench-risk: ## Time the caps' accounting per gateway call (goal 1 us) and the breaker's tick for 10,000 agents (goal 10 ms).
	$(GO) test ./internal/breaker/ -run '^$$' -bench 'BenchmarkMeterTake|BenchmarkDetectorTick10000Agents' -benchmem -benchtime 2s

.PHONY: bench-pii
bench-pii: ## The personal-data recognizers' MB/s per core over prose and over JSON results' string leaves, beside the audit trail's redaction and JSON decoding of the same bytes (the baselines, in the same run).
	$(GO) test ./internal/pii/ -run '^$$' -bench . -benchtime 5x -cpu 1

.PHONY: bench-evaluate
bench-evaluate: build ## Follow a trail of 10,000 records with the manager killed every few seconds: Findings missing or counted twice (must be 0) and the time from record to Finding (BENCH_ARGS="-records 10000 -kill-every 15s").
	$(GO) build -o bin/custos-dev ./hack/dev
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE))" bin/custos-dev bench-evaluate $(BENCH_ARGS)

.PHONY: bench-freeze
bench-freeze: build cluster kwok ## Trip the sample agent again and again on make dev's kwok cluster with 2 gateway replicas, and time every replica and custos-sts refusing it, its lease revoked at the source, deny-all and 0 replicas (BENCH_ARGS="-trials 20").
	$(GO) build -o bin/custos-dev ./hack/dev
	KUBEBUILDER_ASSETS="$$($(CONTROLPLANE) $(CLUSTER))" KWOK="$$($(KWOK))" bin/custos-dev bench-freeze $(BENCH_ARGS)

# Debian's packages the screenshots take: Prometheus with its web UI, and
# a headless Chromium.
SCREENSHOT_PACKAGES := prometheus=2.42.0+ds-5+deb12u1 chromium-headless-shell=156.0.8078.129-1~deb12u1

.PHONY: screenshots
screenshots: ## Take docs/images' pictures of Prometheus's web UI with Custos's alerts and a per-agent graph (installs Debian's prometheus and chromium-headless-shell).
	@dpkg -s prometheus chromium-headless-shell >/dev/null 2>&1 || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SCREENSHOT_PACKAGES) >/dev/null; }
	$(GO) run ./hack/screenshots

.PHONY: replay-risk
replay-risk: ## Judge the breaker's detector on a seeded replay (1,000 agents, 7+7 days, 6x spikes) beside a plain z-score: catch rate, time to detect, false trips (BENCH_ARGS=...).
	$(GO) build -o bin/riskreplay ./hack/riskreplay
	bin/riskreplay $(BENCH_ARGS)

.PHONY: bench-image
bench-image: ## Time image verification cold against cached, with registry round trips per verification.
	$(GO) test ./internal/imageverify -run '^$$' -bench BenchmarkVerify -benchtime 2s

.PHONY: build-audit
build-audit: ## Build the offline audit verifier into bin/custos-audit.
	$(GO) build -o bin/custos-audit ./cmd/custos-audit

.PHONY: build-plugin
build-plugin: ## Build the kubectl plugin into bin/kubectl-custos (put bin/ on PATH for kubectl custos).
	$(GO) build -o bin/kubectl-custos ./cmd/kubectl-custos

.PHONY: generate
generate: ## Generate deepcopy functions.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: ## Generate CRDs, RBAC and webhook manifests, and the chart's CRDs and admission policies.
	$(CONTROLLER_GEN) rbac:roleName=custos-manager crd webhook paths=./... \
		output:crd:artifacts:config=config/crd/bases \
		output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook
	mkdir -p charts/custos/crds
	rm -f charts/custos/crds/*.yaml
	cp config/crd/bases/*.yaml charts/custos/crds/
	mkdir -p charts/custos/files/policies
	rm -f charts/custos/files/policies/*.yaml
	find config/crd/policies -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml -exec cp {} charts/custos/files/policies/ ';'

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files --cached --others --exclude-standard '*.go')

.PHONY: verify
verify: generate manifests controlplane ## Fail when generated files are stale, code is unformatted or vet complains.
	hack/verify.sh "$$($(CONTROLPLANE))/kubectl" $(GENERATED)

.PHONY: clean
clean: ## Remove built binaries (not the control plane) and make dev's state.
	rm -rf bin/manager bin/custos-sts bin/custos-gateway bin/custos-dev .dev

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
		/^[a-zA-Z0-9_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } \
		/^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
