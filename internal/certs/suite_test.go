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

package certs

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/custos-dev/custos/test/controlplane"
)

// The suite's control plane: a real kube-apiserver and etcd, shared by every
// test that needs one. It starts on first use rather than in TestMain, so
// that the unit tests, and every worker process of a fuzz run, do without.
var (
	suiteOnce sync.Once
	suiteErr  error
	cp        *controlplane.ControlPlane
	k8sClient client.Client
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(logLevel()))))
	code := m.Run()
	if cp != nil {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "certs: stopping the control plane: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// apiServer returns an administrator's client of the suite's control plane,
// starting it on the first call.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	suiteOnce.Do(func() {
		cp, suiteErr = controlplane.Start(context.Background(), controlplane.Options{RepoRoot: "../.."})
		if suiteErr != nil {
			return
		}
		k8sClient, suiteErr = client.New(cp.Config, client.Options{})
	})
	if suiteErr != nil {
		t.Fatalf("cannot start the control plane: %v", suiteErr)
	}
	return k8sClient
}

// logLevel is the Rotator's log verbosity in tests: silent unless
// CUSTOS_TEST_LOG is set (to a zap level such as -1 for debug). Tests assert
// on what users see, not on logs.
func logLevel() int {
	if v := os.Getenv("CUSTOS_TEST_LOG"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		return 0
	}
	return int(zapcore.FatalLevel)
}
