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

// Package controlplane starts the local Kubernetes control plane (etcd and
// kube-apiserver, built by hack/controlplane.sh) that Custos's tests and
// `make dev` run on, and installs Custos's API into it: the CRDs and the
// ValidatingAdmissionPolicies that accompany them.
package controlplane

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// AssetsEnv is the variable naming the directory that holds kube-apiserver,
// etcd and kubectl, as envtest expects it. `make test` and `make dev` set it
// to the output of hack/controlplane.sh.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// Options says where Custos's manifests are.
type Options struct {
	// RepoRoot is the root of the Custos repository; CRDs are read from
	// config/crd/bases and admission policies from config/crd/policies.
	RepoRoot string

	// Scheme, when set, is given to envtest for the clients it makes.
	Scheme *runtime.Scheme

	// Output, when set, receives the API server's and etcd's logs.
	Output *os.File

	// Webhooks installs Custos's webhook configurations
	// (config/webhook/manifests.yaml), pointed at a webhook server on
	// loopback with certificates made for it; see ControlPlane.Webhook.
	// Until a manager serves them, requests they govern fail.
	Webhooks bool

	// Bare starts the control plane without Custos's CRDs, admission
	// policies and webhooks, as a fresh cluster to install Custos into
	// (with Helm, say).
	Bare bool

	// ServiceCIDR, when set, is the range Service cluster IPs come from.
	// A range on loopback (say 127.96.0.0/16) lets the API server reach a
	// webhook behind a Service (it dials the cluster IP) at a server on
	// this machine bound to that address, as the Helm chart installs it.
	// StartCluster needs one on loopback.
	ServiceCIDR string

	// AuditLog, when set, is where the API server keeps an audit log
	// (AuditPolicy: every write and every way into a pod, at Metadata
	// level), to tell which admission policy or RBAC rule refused whom.
	AuditLog string
}

// WebhookServing is where the API server expects Custos's webhook server.
type WebhookServing struct {
	Host    string
	Port    int
	CertDir string
}

// ControlPlane is a running local control plane with Custos's API installed.
type ControlPlane struct {
	env *envtest.Environment

	// Config is an administrator's connection to the API server.
	Config *rest.Config

	// Kubeconfig is Config as a kubeconfig file's contents.
	Kubeconfig []byte

	// Webhook is where to serve the webhooks, when Options.Webhooks is set.
	Webhook WebhookServing

	webhooks *envtest.WebhookInstallOptions

	// assets is the directory the binaries came from; serviceCIDR the
	// range of Service cluster IPs (Options.ServiceCIDR). StartCluster
	// needs both.
	assets      string
	serviceCIDR string
}

// Start starts etcd and kube-apiserver from the binaries in $KUBEBUILDER_ASSETS
// and installs Custos's CRDs and admission policies, waiting until both are
// served. Every address is on loopback.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	assets := os.Getenv(AssetsEnv)
	if assets == "" {
		return nil, fmt.Errorf("%s is not set: run hack/controlplane.sh (or make test / make dev), which builds the control plane and prints its directory", AssetsEnv)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("%s has no %s: run hack/controlplane.sh to build it: %w", assets, bin, err)
		}
	}

	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		Scheme:                   opts.Scheme,
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	if !opts.Bare {
		env.CRDDirectoryPaths = []string{filepath.Join(opts.RepoRoot, "config", "crd", "bases")}
		env.ErrorIfCRDPathMissing = true
	}
	if opts.Output != nil {
		env.AttachControlPlaneOutput = true
	}
	apiServer := env.ControlPlane.GetAPIServer()
	// Left alone, the API server advertises an address that is not on this
	// machine and publishes it as the endpoint of the kubernetes Service;
	// nothing Custos runs may ever dial off loopback. The endpoint reconciler
	// refuses a loopback address, and nothing here needs that Service, so it
	// is turned off.
	apiServer.Configure().
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none")
	if opts.ServiceCIDR != "" {
		apiServer.Configure().Set("service-cluster-ip-range", opts.ServiceCIDR)
	}
	if opts.AuditLog != "" {
		if err := configureAudit(apiServer, opts.AuditLog); err != nil {
			return nil, fmt.Errorf("the API server's audit log: %w", err)
		}
	}
	if opts.Output != nil {
		apiServer.Out, apiServer.Err = opts.Output, opts.Output
		env.ControlPlane.Etcd = &envtest.Etcd{Out: opts.Output, Err: opts.Output}
	}

	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane from %s: %w", assets, err)
	}
	cp := &ControlPlane{env: env, Config: cfg, Kubeconfig: env.KubeConfig, assets: assets, serviceCIDR: opts.ServiceCIDR}

	if opts.Bare {
		return cp, nil
	}
	if err := cp.installPolicies(ctx, filepath.Join(opts.RepoRoot, "config", "crd", "policies")); err != nil {
		return nil, errors.Join(err, cp.Stop())
	}
	if opts.Webhooks {
		// Installed last: the policy probe above must not meet a webhook
		// that nothing serves yet.
		cp.webhooks = &envtest.WebhookInstallOptions{
			Paths:            []string{filepath.Join(opts.RepoRoot, "config", "webhook", "manifests.yaml")},
			LocalServingHost: "127.0.0.1",
		}
		if err := cp.webhooks.Install(cfg); err != nil {
			return nil, errors.Join(fmt.Errorf("installing the webhook configurations: %w", err), cp.Stop())
		}
		cp.Webhook = WebhookServing{
			Host:    cp.webhooks.LocalServingHost,
			Port:    cp.webhooks.LocalServingPort,
			CertDir: cp.webhooks.LocalServingCertDir,
		}
	}
	return cp, nil
}

// Stop stops kube-apiserver and etcd and removes their data and the
// webhook certificates.
func (cp *ControlPlane) Stop() error {
	err := cp.env.Stop()
	if cp.webhooks != nil {
		err = errors.Join(err, cp.webhooks.Cleanup())
	}
	return err
}

// AddUser returns a connection for a user with the given groups, to test what
// the API server allows whom.
func (cp *ControlPlane) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := cp.env.AddUser(envtest.User{Name: name, Groups: groups}, cp.Config)
	if err != nil {
		return nil, err
	}
	return u.Config(), nil
}

// installPolicies creates the ValidatingAdmissionPolicies and their bindings
// found in dir, then waits until the API server enforces them, so that no
// test races the policies' arrival.
func (cp *ControlPlane) installPolicies(ctx context.Context, dir string) error {
	objs, err := readPolicies(dir)
	if err != nil {
		return err
	}
	c, err := client.New(cp.Config, client.Options{})
	if err != nil {
		return err
	}
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("installing %T %s: %w", obj, obj.GetName(), err)
		}
	}
	// The API server picks policies up from informers; until it has, it
	// admits what they refuse and stores what they would change. A dry-run
	// Agent without a tenant label tells when the tenant-label policy is
	// enforced, and one with it, in a tenant namespace of its own, when the
	// finalizer policy adds the finalizer.
	const probeNS = "custos-policy-probe"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: probeNS, Labels: map[string]string{custosv1alpha1.TenantLabel: "probe"},
	}}); err != nil {
		return fmt.Errorf("creating namespace %s for the policy probe: %w", probeNS, err)
	}
	probe := func(labels map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "custos.dev/v1alpha1",
			"kind":       "Agent",
			"metadata":   map[string]any{"name": "policy-probe", "namespace": probeNS, "labels": labels},
			"spec": map[string]any{
				"owner":   map[string]any{"team": "custos", "contact": "custos@example.com"},
				"purpose": "probe",
				"image":   "probe",
			},
		}}
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err := c.Create(ctx, probe(nil), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "custos-tenant-label") {
			return false, nil
		}
		labelled := probe(map[string]any{custosv1alpha1.TenantLabel: "probe"})
		if err := c.Create(ctx, labelled, client.DryRunAll); err != nil {
			return false, nil
		}
		return slices.Contains(labelled.GetFinalizers(), custosv1alpha1.DecommissionFinalizer), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the API server to enforce the admission policies in %s: %w", dir, err)
	}
	// Without a namespace controller (envtest) it stays Terminating, empty.
	return client.IgnoreNotFound(c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: probeNS}}))
}

// readPolicies reads every YAML document of dir's *.yaml files as a
// Validating or MutatingAdmissionPolicy or a binding of one.
func readPolicies(dir string) ([]client.Object, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var objs []client.Object
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			var meta struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			var obj client.Object
			switch meta.Kind {
			case "ValidatingAdmissionPolicy":
				obj = &admissionregistrationv1.ValidatingAdmissionPolicy{}
			case "ValidatingAdmissionPolicyBinding":
				obj = &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
			case "MutatingAdmissionPolicy":
				obj = &admissionregistrationv1.MutatingAdmissionPolicy{}
			case "MutatingAdmissionPolicyBinding":
				obj = &admissionregistrationv1.MutatingAdmissionPolicyBinding{}
			case "":
				continue
			default:
				return nil, fmt.Errorf("%s: unexpected kind %q", f, meta.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			objs = append(objs, obj)
		}
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no admission policies in %s", dir)
	}
	return objs, nil
}
