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

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/custos-dev/custos/internal/sts/cluster"
)

const revokeUsage = `usage:
  kubectl custos revoke --tenant TENANT --list [-n NAMESPACE]
  kubectl custos revoke --tenant TENANT --session SID --reason WHY [--for 24h] [-n NAMESPACE]
  kubectl custos revoke --tenant TENANT --jti JTI --reason WHY [--for 24h] [-n NAMESPACE]

Puts a person's session (every token of it, at every hop) or one token on
the tenant's revocation list, which every custos-sts replica watches: the
next exchange of it is refused. NAMESPACE is custos-sts's (custos-system by
default). --for is how long the entry stays: at least as long as any token
of it may live.
`

// revoke is kubectl custos revoke.
func revoke(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, revokeUsage) }
	tenant := fs.String("tenant", "", "The DataBoundary tenant whose tokens are revoked.")
	session := fs.String("session", "", "The session (sid claim) to revoke.")
	jti := fs.String("jti", "", "The token (jti claim) to revoke.")
	reason := fs.String("reason", "", "Why, for the record: every refusal says it.")
	keep := fs.Duration("for", 24*time.Hour, "How long the revocation stays on the list.")
	namespace := fs.String("namespace", "custos-system", "custos-sts's namespace, where the revocation lists are.")
	fs.StringVar(namespace, "n", "custos-system", "Short for --namespace.")
	kubeconfig := fs.String("kubeconfig", "", "Path to the kubeconfig; KUBECONFIG or ~/.kube/config by default.")
	kubecontext := fs.String("context", "", "The kubeconfig context to use.")
	list := fs.Bool("list", false, "List what is revoked in the tenant now, instead of revoking.")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	var problems []string
	switch {
	case fs.NArg() > 0:
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	case *tenant == "":
		problems = append(problems, "--tenant is required")
	}
	e := cluster.Revocation{Reason: strings.TrimSpace(*reason)}
	switch {
	case *list:
		if *session != "" || *jti != "" || e.Reason != "" {
			problems = append(problems, "--list takes no --session, --jti or --reason")
		}
	case (*session == "") == (*jti == ""):
		problems = append(problems, "give exactly one of --session and --jti")
	case *session != "":
		e.Kind, e.Value = cluster.RevokeSession, *session
	default:
		e.Kind, e.Value = cluster.RevokeToken, *jti
	}
	if e.Reason == "" && !*list {
		problems = append(problems, "--reason is required: every refusal of the token says why it was revoked")
	}
	if *keep <= 0 {
		problems = append(problems, fmt.Sprintf("--for %s: must be positive", *keep))
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "kubectl custos revoke: %s\n%s", strings.Join(problems, "; "), revokeUsage)
		return exitUsage
	}

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: *kubecontext}).ClientConfig()
	if err != nil {
		fmt.Fprintf(stderr, "kubectl custos revoke: %v\n", err)
		return exitTrouble
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(stderr, "kubectl custos revoke: %v\n", err)
		return exitTrouble
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if *list {
		return listRevoked(ctx, c, *namespace, *tenant, stdout, stderr)
	}
	// Who revokes, as the API server names them: not a free-text name.
	review := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, review); err != nil {
		fmt.Fprintf(stderr, "kubectl custos revoke: asking the API server who you are: %v\n", err)
		return exitTrouble
	}
	e.By = review.Status.UserInfo.Username
	now := time.Now()
	e.Until = metav1.NewTime(now.Add(*keep).Truncate(time.Second))
	if err := cluster.Revoke(ctx, c, *namespace, *tenant, e, now); err != nil {
		fmt.Fprintf(stderr, "kubectl custos revoke: %v\n", err)
		return exitFailed
	}
	what := "token " + e.Value
	if e.Kind == cluster.RevokeSession {
		what = "session " + e.Value + " (every token of it)"
	}
	fmt.Fprintf(stdout, "revoked %s of tenant %s until %s, by %s: %s\n(on %s/%s; custos-sts refuses it from its next exchange)\n",
		what, *tenant, e.Until.UTC().Format(time.RFC3339), e.By, e.Reason, *namespace, cluster.RevocationListName(*tenant))
	return exitOK
}

// listRevoked prints what is revoked in tenant now, oldest first.
func listRevoked(ctx context.Context, c client.Client, namespace, tenant string, stdout, stderr io.Writer) int {
	entries, err := cluster.RevocationList(ctx, c, namespace, tenant, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "kubectl custos revoke: %v\n", err)
		return exitFailed
	}
	if len(entries) == 0 {
		fmt.Fprintf(stdout, "nothing is revoked in tenant %s\n", tenant)
		return exitOK
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tREVOKED\tAT\tUNTIL\tBY\tREASON")
	for _, e := range entries {
		kind := "session"
		if e.Kind == cluster.RevokeToken {
			kind = "token"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", kind, e.Value, e.At.UTC().Format(time.RFC3339), e.Until.UTC().Format(time.RFC3339), e.By, e.Reason)
	}
	_ = w.Flush()
	return exitOK
}
