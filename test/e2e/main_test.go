//go:build e2e

/*
Copyright 2026 The Custos Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/imagetest"
)

const (
	// HelmEnv names the helm binary (hack/helm.sh); make e2e sets it, as it
	// sets KUBEBUILDER_ASSETS (hack/controlplane.sh, with
	// kube-controller-manager and kube-scheduler) and KWOK (hack/kwok.sh).
	HelmEnv = "HELM"
	// ArtifactsEnv, when set, names a directory that keeps the suite's logs
	// and dumps; otherwise they go to a temporary directory, kept (and
	// named) only when a test fails.
	ArtifactsEnv = "E2E_ARTIFACTS"

	// Service cluster IPs on loopback: the API server dials the chart's
	// webhook Service at its cluster IP, where the suite's manager listens.
	serviceCIDR = "127.98.0.0/16"
)

// The cluster and what runs on it, shared by the journeys.
var (
	scheme = runtime.NewScheme()

	helmBin, kubectlBin, managerBin string
	// artifacts holds the logs (control plane, cluster components,
	// manager), kubeconfigs and failure dumps.
	artifacts string

	cp      *controlplane.ControlPlane
	cluster *controlplane.Cluster
	// admin is the platform team's kubeconfig (system:masters).
	admin string

	// images serves the agents' image, signed by a key whose public half
	// the platform team puts in the Secret its DataBoundary names.
	images *imagetest.Trust
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) (code int) {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))

	helmBin = os.Getenv(HelmEnv)
	assets := os.Getenv(controlplane.AssetsEnv)
	if helmBin == "" || assets == "" || os.Getenv(controlplane.KwokEnv) == "" {
		fmt.Fprintf(os.Stderr, "e2e: %s, %s and %s must be set: run make e2e, which builds them\n",
			controlplane.AssetsEnv, HelmEnv, controlplane.KwokEnv)
		return 1
	}
	kubectlBin = filepath.Join(assets, "kubectl")

	artifacts = os.Getenv(ArtifactsEnv)
	keep := artifacts != ""
	if keep {
		if err := os.MkdirAll(artifacts, 0o755); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
	} else {
		dir, err := os.MkdirTemp("", "custos-e2e-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		artifacts = dir
	}
	defer func() {
		switch {
		case code != 0:
			fmt.Fprintf(os.Stderr, "e2e: logs and dumps are kept in %s\n", artifacts)
		case !keep:
			os.RemoveAll(artifacts)
		}
	}()
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
		return 1
	}

	start := time.Now()
	var err error
	if managerBin, err = controlplane.BuildManager("../..", artifacts); err != nil {
		return fail("%v", err)
	}

	// The registry the agents' images come from, signed by a key the
	// tenant's DataBoundary trusts.
	if images, err = imagetest.NewTrust("agents/invoice-reconciler:1.4.2", custosNS, signerSecret); err != nil {
		return fail("serving the agent image: %v", err)
	}
	defer images.Close()

	cpLog, err := os.Create(filepath.Join(artifacts, "kube-apiserver.log"))
	if err != nil {
		return fail("%v", err)
	}
	defer cpLog.Close()
	ctx := context.Background()
	cp, err = controlplane.Start(ctx, controlplane.Options{Bare: true, ServiceCIDR: serviceCIDR, Output: cpLog,
		AuditLog: filepath.Join(artifacts, "kube-apiserver-audit.log")})
	if err != nil {
		return fail("%v", err)
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: stopping the control plane: %v\n", err)
		}
	}()
	cluster, err = cp.StartCluster(ctx, controlplane.ClusterOptions{LogDir: artifacts})
	if err != nil {
		return fail("%v", err)
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: stopping the cluster: %v\n", err)
		}
	}()
	admin = filepath.Join(artifacts, "admin.kubeconfig")
	if err := os.WriteFile(admin, cp.Kubeconfig, 0o600); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(os.Stderr, "e2e: cluster of %d nodes up in %s\n", len(cluster.Nodes), time.Since(start).Round(time.Second))
	return m.Run()
}
