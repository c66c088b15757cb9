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

package gateway

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// EndpointURL is where the gateway calls a Toolset's MCP server:
// <scheme>://<service>.<namespace>.svc:<port><path> in the cluster, and
// https://<host>:<port><path> outside it. An in-cluster Toolset without a
// Service cannot be called: the gateway does not pick a pod itself.
func EndpointURL(ts *custosv1alpha1.Toolset) (string, error) {
	e := ts.Spec.Endpoint
	path := e.Path
	if path == "" {
		path = "/mcp"
	}
	var scheme, host string
	var port int32
	switch {
	case e.InCluster != nil:
		if e.InCluster.Service == "" {
			return "", fmt.Errorf("Toolset %s/%s: spec.endpoint.inCluster.service is not set: custos-gateway calls an in-cluster tool server through its Service", ts.Namespace, ts.Name)
		}
		scheme = e.InCluster.Scheme
		if scheme == "" {
			scheme = "https"
		}
		host, port = e.InCluster.Service+"."+e.InCluster.Namespace+".svc", e.InCluster.Port
	case e.External != nil:
		scheme, host, port = "https", e.External.Host, e.External.Port
		if port == 0 {
			port = 443
		}
	default:
		return "", fmt.Errorf("Toolset %s/%s has no endpoint", ts.Namespace, ts.Name)
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(int(port))), Path: path}
	return u.String(), nil
}

// Dialer dials as curl --resolve does: the address overrides give for a
// host:port, and any other as it is. Development and tests run tool
// servers on loopback under the names their Toolsets give.
func Dialer(overrides map[string]string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if to, ok := overrides[addr]; ok {
			addr = to
		}
		return d.DialContext(ctx, network, addr)
	}
}
