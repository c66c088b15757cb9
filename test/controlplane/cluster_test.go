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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestCluster starts a cluster and runs a Deployment on it: the controller
// manager rolls it out, the scheduler places its pods on the nodes of the
// regions it may run in, kwok runs them, and deleting it collects its
// ReplicaSet and pods. It needs the binaries make e2e builds.
func TestCluster(t *testing.T) {
	assets, kwok := os.Getenv(AssetsEnv), os.Getenv(KwokEnv)
	if kwok == "" {
		t.Skipf("%s is not set: make e2e runs this test, or %s=\"$(hack/kwok.sh)\" %s=\"$(hack/controlplane.sh kube-apiserver etcd kubectl kube-controller-manager kube-scheduler)\" go test ./test/controlplane/ -run Cluster",
			KwokEnv, KwokEnv, AssetsEnv)
	}
	for _, bin := range []string{"kube-controller-manager", "kube-scheduler"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			t.Skipf("%s has no %s: make e2e runs this test (hack/controlplane.sh kube-controller-manager kube-scheduler builds it)", assets, bin)
		}
	}
	g := NewWithT(t)
	ctx := context.Background()

	cp, err := Start(ctx, Options{Bare: true, ServiceCIDR: "127.97.0.0/16"})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { g.Expect(cp.Stop()).To(Succeed()) })

	// Refused without a Service range on loopback.
	noRange := *cp
	noRange.serviceCIDR = ""
	_, err = noRange.StartCluster(ctx, ClusterOptions{KwokBin: kwok})
	g.Expect(err).To(MatchError(ContainSubstring("ServiceCIDR on loopback")))

	// A component that cannot start fails StartCluster with its reason,
	// and takes the others down with it.
	_, err = cp.StartCluster(ctx, ClusterOptions{KwokBin: kwok, KwokStages: []string{"/nonexistent/stage.yaml"}, LogDir: t.TempDir()})
	g.Expect(err).To(MatchError(And(ContainSubstring("kwok exited"), ContainSubstring("/nonexistent/stage.yaml"))))

	logDir := t.TempDir()
	start := time.Now()
	cluster, err := cp.StartCluster(ctx, ClusterOptions{KwokBin: kwok, LogDir: logDir})
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("cluster ready in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"kube-controller-manager", "kube-scheduler", "kwok"} {
				t.Logf("--- %s.log (last lines)\n%s", name, tail(filepath.Join(logDir, name+".log"), 40))
			}
		}
		g.Expect(cluster.Stop()).To(Succeed())
	})

	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())

	// Three nodes in three regions, Ready, untainted, on loopback.
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(nodes.Items).To(HaveLen(3))
	regions := map[string]string{}
	for _, n := range nodes.Items {
		regions[n.Name] = n.Labels[RegionLabel]
		g.Expect(n.Labels).To(HaveKeyWithValue(ZoneLabel, n.Labels[RegionLabel]+"a"))
		g.Expect(n.Labels).To(HaveKeyWithValue(HostnameLabel, n.Name))
		g.Expect(n.Spec.Taints).To(BeEmpty())
		g.Expect(n.Status.Addresses).To(ContainElement(corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: kwokNodeIP}))
	}
	g.Expect(regions).To(ConsistOf("eu-west-1", "eu-central-1", "us-east-1"))

	// The controller manager runs its controllers with the API server's
	// service account key and CA: namespaces get their default
	// ServiceAccount and the root CA.
	g.Eventually(func(g Gomega) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		ca, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ca.Data["ca.crt"]).To(Equal(string(cp.Config.CAData)))
	}).WithTimeout(time.Minute).Should(Succeed())

	// A Deployment that may run in the EU only rolls out there.
	labels := map[string]string{"app": "cluster-test"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-test", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/app:1.0"}},
					Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
							NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
								Key: RegionLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{"eu-west-1", "eu-central-1"},
							}}}},
						},
					}},
				},
			},
		},
	}
	_, err = cs.AppsV1().Deployments("default").Create(ctx, deploy, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	start = time.Now()
	g.Eventually(func(g Gomega) {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, deploy.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(d.Status.AvailableReplicas).To(Equal(int32(3)))
	}).WithTimeout(2 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
	t.Logf("3/3 available in %s", time.Since(start).Round(time.Millisecond))
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=cluster-test"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pods.Items).To(HaveLen(3))
	for _, p := range pods.Items {
		g.Expect(regions[p.Spec.NodeName]).To(BeElementOf("eu-west-1", "eu-central-1"), "pod %s on %s", p.Name, p.Spec.NodeName)
		g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
		g.Expect(strings.HasPrefix(p.Status.PodIP, "127.1.")).To(BeTrue(), "pod %s has IP %s", p.Name, p.Status.PodIP)
	}

	// Deleted, its ReplicaSet and pods are garbage-collected.
	g.Expect(cs.AppsV1().Deployments("default").Delete(ctx, deploy.Name, metav1.DeleteOptions{})).To(Succeed())
	g.Eventually(func(g Gomega) {
		_, err := cs.AppsV1().Deployments("default").Get(ctx, deploy.Name, metav1.GetOptions{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		rss, err := cs.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=cluster-test"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(rss.Items).To(BeEmpty())
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=cluster-test"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pods.Items).To(BeEmpty())
	}).WithTimeout(2 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
}
