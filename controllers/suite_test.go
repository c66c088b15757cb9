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

package controllers

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/controlplane"
)

// The suite's control plane: a real kube-apiserver and etcd with Custos's
// CRDs and admission policies installed, shared by every test of the package.
var (
	testScheme = runtime.NewScheme()
	k8sClient  client.Client
	cp         *controlplane.ControlPlane
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(testScheme))
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctx := context.Background()
	var err error
	cp, err = controlplane.Start(ctx, controlplane.Options{RepoRoot: "..", Scheme: testScheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "controllers: cannot start the control plane: %v\n", err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "controllers: stopping the control plane: %v\n", err)
		}
	}()
	k8sClient, err = client.New(cp.Config, client.Options{Scheme: testScheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "controllers: %v\n", err)
		return 1
	}
	return m.Run()
}

// tenantNamespace creates a namespace of its own for the calling test,
// labelled for tenant, and deletes it when the test ends.
func tenantNamespace(t *testing.T, tenant string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "test-",
		Labels:       map[string]string{custosv1alpha1.TenantLabel: tenant},
	}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}

func keyOf(obj client.Object) client.ObjectKey {
	return client.ObjectKeyFromObject(obj)
}
