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

package lease

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/custos-dev/custos/test/controlplane"
)

// The package's control plane: a bare kube-apiserver and etcd on loopback,
// whose TokenRequest API issues the ServiceAccount tokens every backend
// starts from, shared by every test of the package.
var (
	testConfig *rest.Config
	testClient kubernetes.Interface
)

// The agents of the tests: a namespace and its ServiceAccounts.
const (
	testNamespace = "agents"
	// trustedSA is the ServiceAccount the clouds' doubles trust.
	trustedSA = "agent-a"
	// untrustedSA is a ServiceAccount no role trusts.
	untrustedSA = "agent-b"
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctx := context.Background()
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: "../..", Bare: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "lease: cannot start the control plane: %v\n", err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "lease: stopping the control plane: %v\n", err)
		}
	}()
	testConfig = cp.Config
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lease: %v\n", err)
		return 1
	}
	testClient = cs
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}, metav1.CreateOptions{}); err != nil {
		fmt.Fprintf(os.Stderr, "lease: %v\n", err)
		return 1
	}
	for _, sa := range []string{trustedSA, untrustedSA} {
		obj := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: testNamespace}}
		if _, err := cs.CoreV1().ServiceAccounts(testNamespace).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			fmt.Fprintf(os.Stderr, "lease: %v\n", err)
			return 1
		}
	}
	return m.Run()
}
