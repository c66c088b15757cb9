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

package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StartChartManager runs managerBin as the Helm release installed into
// namespace would run it: with its Deployment's arguments (environment
// variables expanded as the kubelet would), as the chart's ServiceAccount
// (impersonated), and listening where the chart's webhook Service sends the
// API server, the Service's cluster IP, which must be on loopback
// (Options.ServiceCIDR). Its kubeconfig, log, webhook certificates and audit
// store go into dir. No pod runs it: nothing on this machine runs
// containers.
func (cp *ControlPlane) StartChartManager(ctx context.Context, c client.Client, namespace, release, managerBin, dir string) (*Manager, error) {
	var deploys appsv1.DeploymentList
	if err := c.List(ctx, &deploys, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/instance": release}); err != nil {
		return nil, err
	}
	if len(deploys.Items) != 1 {
		return nil, fmt.Errorf("release %s/%s has %d Deployments; the chart has one, the manager", namespace, release, len(deploys.Items))
	}
	pod := deploys.Items[0].Spec.Template.Spec
	container := pod.Containers[0]

	var vwcs admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := c.List(ctx, &vwcs, client.MatchingLabels{"app.kubernetes.io/instance": release}); err != nil {
		return nil, err
	}
	if len(vwcs.Items) != 1 || len(vwcs.Items[0].Webhooks) == 0 || vwcs.Items[0].Webhooks[0].ClientConfig.Service == nil {
		return nil, errors.New("the release has no validating webhook configuration pointing at its Service")
	}
	ref := vwcs.Items[0].Webhooks[0].ClientConfig.Service
	svc := &corev1.Service{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, svc); err != nil {
		return nil, err
	}

	// What the kubelet would do: expand $(VAR) from the container's env.
	env := map[string]string{}
	for _, e := range container.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace" {
			env[e.Name] = namespace
		} else {
			env[e.Name] = e.Value
		}
	}
	var args []string
	for _, a := range container.Args {
		for k, v := range env {
			a = strings.ReplaceAll(a, "$("+k+")", v)
		}
		// Where it listens and keeps files is this machine's business.
		if strings.HasPrefix(a, "--webhook-host") || strings.HasPrefix(a, "--webhook-port") ||
			strings.HasPrefix(a, "--webhook-cert-dir") || strings.HasPrefix(a, "--metrics-bind-address") ||
			strings.HasPrefix(a, "--health-probe-bind-address") || strings.HasPrefix(a, "--audit-dir") {
			continue
		}
		args = append(args, a)
	}
	certDir, auditDir := filepath.Join(dir, "webhook-certs"), filepath.Join(dir, "audit")
	for _, d := range []string{certDir, auditDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	args = append(args,
		"--webhook-host="+svc.Spec.ClusterIP, fmt.Sprintf("--webhook-port=%d", ptr.Deref(ref.Port, 443)),
		"--webhook-cert-dir="+certDir, "--audit-dir="+auditDir)

	impersonating := rest.CopyConfig(cp.Config)
	impersonating.Impersonate = rest.ImpersonationConfig{
		UserName: fmt.Sprintf("system:serviceaccount:%s:%s", namespace, pod.ServiceAccountName),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	kubeconfig := filepath.Join(dir, "manager.kubeconfig")
	if err := WriteKubeconfig(kubeconfig, impersonating); err != nil {
		return nil, err
	}
	return cp.StartManager(ctx, managerBin, kubeconfig, filepath.Join(dir, "manager.log"), args...)
}

// WriteKubeconfig writes cfg (client certificate or token, and any
// impersonation) as a kubeconfig file at path, for kubectl, helm and the
// manager binary.
func WriteKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken,
		Impersonate: cfg.Impersonate.UserName, ImpersonateGroups: cfg.Impersonate.Groups,
	}
	kc.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "user"}
	kc.CurrentContext = "local"
	return clientcmd.WriteToFile(*kc, path)
}
