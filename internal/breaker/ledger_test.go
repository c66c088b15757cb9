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

package breaker_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/test/controlplane"
)

var (
	cpOnce   sync.Once
	cpClient client.Client
	cpErr    error
	cpStop   func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cpStop != nil {
		cpStop()
	}
	os.Exit(code)
}

// configMapLedger is a ConfigMapLedger on a real API server (started for
// the first test that needs one), in a namespace of its own.
func configMapLedger(t *testing.T) breaker.Ledger {
	t.Helper()
	return &breaker.ConfigMapLedger{Client: apiServer(t), Namespace: newNamespace(t, "custos-gateway-")}
}

// apiServer is a client of a real API server with Custos's CRDs, started
// for the first test that needs one.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	cpOnce.Do(func() {
		scheme := runtime.NewScheme()
		_ = clientgoscheme.AddToScheme(scheme)
		_ = custosv1alpha1.AddToScheme(scheme)
		cp, err := controlplane.Start(context.Background(), controlplane.Options{RepoRoot: "../..", Scheme: scheme})
		if err != nil {
			cpErr = err
			return
		}
		cpStop = func() {
			if err := cp.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "breaker: stopping the control plane: %v\n", err)
			}
		}
		cpClient, cpErr = client.New(cp.Config, client.Options{Scheme: scheme})
	})
	if cpErr != nil {
		t.Fatalf("cannot start the control plane: %v", cpErr)
	}
	return cpClient
}

// newNamespace makes a namespace of a generated name.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := apiServer(t).Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// A total that is not a count is corrupt: the ledger refuses (the gateway
// refuses the call, CapsUnavailable) rather than guess; giving back to a
// window the ledger no longer keeps writes nothing.
func TestConfigMapLedgerRefusesCorruptTotals(t *testing.T) {
	l := configMapLedger(t).(*breaker.ConfigMapLedger)
	ctx := context.Background()
	start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	limits := breaker.Usage{Records: 100}
	if err := l.Release(ctx, agentKey, breaker.Day, start, breaker.Usage{Records: 50}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Reserve(ctx, agentKey, breaker.Day, start, breaker.Usage{Records: 1}, breaker.Usage{Records: 1}, limits); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{}
	if err := cpClient.Get(ctx, client.ObjectKey{Namespace: l.Namespace, Name: breaker.LedgerName(agentKey)}, cm); err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("day.%d.records", start.Unix())
	if cm.Data[key] != "1" {
		t.Fatalf("after a release to nothing and a reservation of 1: %v", cm.Data)
	}
	cm.Data[key] = "-500"
	if err := cpClient.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	_, _, err := l.Reserve(ctx, agentKey, breaker.Day, start, breaker.Usage{Records: 1}, breaker.Usage{Records: 1}, limits)
	if err == nil || !strings.Contains(err.Error(), `is "-500": not a count`) {
		t.Fatalf("a negative total: %v", err)
	}
}
