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
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// testService is the Service the test webhook configurations point at. It
// is never created: the API server never calls these webhooks.
const testService = "custos-webhook"

// fixture is one test's world: a namespace for the Secret, webhook
// configurations of its own, and a clock it moves.
type fixture struct {
	c          client.Client
	ns         string
	validating string
	mutating   string
	clock      *clocktesting.FakeClock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := apiServer(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "certs-"}}
	if err := c.Create(t.Context(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ns) })
	f := &fixture{
		c:          c,
		ns:         ns.Name,
		validating: "validating-" + ns.Name,
		mutating:   "mutating-" + ns.Name,
		clock:      clocktesting.NewFakeClock(time.Now()),
	}
	f.createValidating(t, f.validating)
	createObject(t, c, mutatingConfig(f.mutating, f.ns))
	return f
}

func (f *fixture) createValidating(t *testing.T, name string) {
	t.Helper()
	createObject(t, f.c, validatingConfig(name, f.ns))
}

func createObject(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(t.Context(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), obj) })
}

// rotator is one replica of the manager.
func (f *fixture) rotator(t *testing.T) *Rotator {
	return &Rotator{
		Client:             f.c,
		Namespace:          f.ns,
		SecretName:         "webhook-tls",
		ServiceName:        testService,
		ServiceNamespace:   f.ns,
		ValidatingWebhooks: []string{f.validating},
		MutatingWebhooks:   []string{f.mutating},
		CertDir:            t.TempDir(),
		Clock:              f.clock,
	}
}

// dnsName is the name the API server checks the serving certificate for.
func (f *fixture) dnsName() string { return testService + "." + f.ns + ".svc" }

func (f *fixture) secret(g Gomega) *corev1.Secret {
	s := &corev1.Secret{}
	g.Expect(f.c.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: "webhook-tls"}, s)).To(Succeed())
	return s
}

func (f *fixture) configs(g Gomega) (*admissionregistrationv1.ValidatingWebhookConfiguration, *admissionregistrationv1.MutatingWebhookConfiguration) {
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	g.Expect(f.c.Get(context.Background(), client.ObjectKey{Name: f.validating}, v)).To(Succeed())
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	g.Expect(f.c.Get(context.Background(), client.ObjectKey{Name: f.mutating}, m)).To(Succeed())
	return v, m
}

// caBundles are the caBundles of every webhook of the fixture's
// configurations, as the API server reads them.
func (f *fixture) caBundles(g Gomega) [][]byte {
	v, m := f.configs(g)
	var b [][]byte
	for _, w := range v.Webhooks {
		b = append(b, w.ClientConfig.CABundle)
	}
	for _, w := range m.Webhooks {
		b = append(b, w.ClientConfig.CABundle)
	}
	return b
}

// expectConsistent checks what every replica must end with: the caBundle of
// every webhook is the Secret's bundle, each replica's files are the
// Secret's serving certificate, and that certificate verifies against the
// caBundle for the service's name.
func (f *fixture) expectConsistent(g Gomega, replicas ...*Rotator) *corev1.Secret {
	secret := f.secret(g)
	bundles := f.caBundles(g)
	g.Expect(bundles).To(HaveLen(4))
	for _, b := range bundles {
		g.Expect(b).To(Equal(secret.Data[CACertKey]))
	}
	for _, r := range replicas {
		for _, name := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
			got, err := os.ReadFile(filepath.Join(r.CertDir, name))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(secret.Data[name]), name)
		}
	}
	verifyServing(g, map[string][]byte{CACertKey: bundles[0], corev1.TLSCertKey: secret.Data[corev1.TLSCertKey]}, f.dnsName(), f.clock.Now())
	return secret
}

// wipeCABundles does what a GitOps tool re-applying the configurations from
// git does: it puts them back without caBundle.
func (f *fixture) wipeCABundles(g Gomega) {
	v, m := f.configs(g)
	for i := range v.Webhooks {
		v.Webhooks[i].ClientConfig.CABundle = nil
	}
	for i := range m.Webhooks {
		m.Webhooks[i].ClientConfig.CABundle = nil
	}
	g.Expect(f.c.Update(context.Background(), v)).To(Succeed())
	g.Expect(f.c.Update(context.Background(), m)).To(Succeed())
	for _, b := range f.caBundles(g) {
		g.Expect(b).To(BeEmpty())
	}
}

// Webhooks the API server never calls: they match a resource that does not
// exist, and should one ever match, failing to reach the Service (which does
// not exist either) is ignored.
func testWebhook(ns, name string) (string, admissionregistrationv1.WebhookClientConfig, []admissionregistrationv1.RuleWithOperations) {
	return name + ".certs.test.custos.dev",
		admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: ns, Name: testService, Path: ptr.To("/" + name),
		}},
		[]admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{"certs.test.custos.dev"},
				APIVersions: []string{"v1"},
				Resources:   []string{"nothings"},
			},
		}}
}

func validatingConfig(name, ns string) *admissionregistrationv1.ValidatingWebhookConfiguration {
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, w := range []string{"first", "second"} {
		n, cc, rules := testWebhook(ns, w)
		v.Webhooks = append(v.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name: n, ClientConfig: cc, Rules: rules,
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		})
	}
	return v
}

func mutatingConfig(name, ns string) *admissionregistrationv1.MutatingWebhookConfiguration {
	m := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, w := range []string{"first", "second"} {
		n, cc, rules := testWebhook(ns, w)
		m.Webhooks = append(m.Webhooks, admissionregistrationv1.MutatingWebhook{
			Name: n, ClientConfig: cc, Rules: rules,
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		})
	}
	return m
}

// serveWebhooks starts controller-runtime's webhook server on loopback with
// the files in certDir, as the manager runs it: its certificate watcher
// reloads them when the Rotator replaces them.
func serveWebhooks(t *testing.T, certDir string) string {
	t.Helper()
	// Any free port: the webhook server takes a number, not a listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	srv := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir})
	srv.Register("/first", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	NewWithT(t).Eventually(func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err
	}).Should(Succeed())
	return addr
}

// callWebhook calls the webhook server at addr as the API server calls a
// webhook: trusting caBundle only, and checking that the certificate is for
// the service's DNS name. It returns the certificate served.
func callWebhook(addr string, caBundle []byte, dnsName string, now time.Time) (*x509.Certificate, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caBundle) {
		return nil, fmt.Errorf("no certificate in the CA bundle")
	}
	c := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			// The fake clock's time: certificates are issued at it.
			TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: dnsName, Time: func() time.Time { return now }, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
	resp, err := c.Get("https://" + addr + "/first")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		return nil, fmt.Errorf("the webhook answered %s: %s", resp.Status, body)
	}
	return resp.TLS.PeerCertificates[0], nil
}

func leafOf(g Gomega, data map[string][]byte) *x509.Certificate {
	certs, err := decodeCerts(data[corev1.TLSCertKey])
	g.Expect(err).NotTo(HaveOccurred())
	return certs[0]
}

func casOf(g Gomega, data map[string][]byte) []*x509.Certificate {
	certs, err := decodeCerts(data[CACertKey])
	g.Expect(err).NotTo(HaveOccurred())
	return certs
}

func TestEnsure(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	r := f.rotator(t)

	g.Expect(r.Ensure(t.Context())).To(Succeed())

	secret := f.expectConsistent(g, r)
	g.Expect(secret.Type).To(Equal(corev1.SecretTypeTLS))
	g.Expect(secret.Labels).To(HaveKeyWithValue(custosv1alpha1.ManagedByLabel, custosv1alpha1.ManagedByValue))
	g.Expect(secret.Data).To(HaveKey(CAKeyKey))
	g.Expect(casOf(g, secret.Data)).To(HaveLen(1))
	leaf := leafOf(g, secret.Data)
	g.Expect(leaf.DNSNames).To(ConsistOf(f.dnsName(), f.dnsName()+".cluster.local"))

	// The webhook server serves it, and a client that trusts only the
	// caBundle of the webhook configuration accepts it for the service's
	// name, and for no other.
	addr := serveWebhooks(t, r.CertDir)
	bundle := f.caBundles(g)[0]
	served, err := callWebhook(addr, bundle, f.dnsName(), f.clock.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(served.Equal(leaf)).To(BeTrue())
	_, err = callWebhook(addr, bundle, "other."+f.ns+".svc", f.clock.Now())
	g.Expect(err).To(MatchError(ContainSubstring("certificate is valid for")))

	// Again: nothing changes, not the Secret, not the configurations, not
	// the files.
	v, m := f.configs(g)
	files, err := os.Stat(filepath.Join(r.CertDir, corev1.TLSCertKey))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Ensure(t.Context())).To(Succeed())
	g.Expect(f.secret(g).ResourceVersion).To(Equal(secret.ResourceVersion))
	v2, m2 := f.configs(g)
	g.Expect(v2.ResourceVersion).To(Equal(v.ResourceVersion))
	g.Expect(m2.ResourceVersion).To(Equal(m.ResourceVersion))
	again, err := os.Stat(filepath.Join(r.CertDir, corev1.TLSCertKey))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.SameFile(files, again)).To(BeTrue())
}

func TestEnsureReissuesServingCertificate(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	r := f.rotator(t)
	g.Expect(r.Ensure(t.Context())).To(Succeed())
	before := f.secret(g)
	v, _ := f.configs(g)
	addr := serveWebhooks(t, r.CertDir)

	f.clock.SetTime(refreshAt(leafOf(g, before.Data), DefaultRefreshBefore).Add(time.Minute))
	g.Expect(r.Ensure(t.Context())).To(Succeed())

	after := f.expectConsistent(g, r)
	g.Expect(after.Data[corev1.TLSCertKey]).NotTo(Equal(before.Data[corev1.TLSCertKey]))
	g.Expect(after.Data[CACertKey]).To(Equal(before.Data[CACertKey]), "the CA is kept")
	g.Expect(after.Data[CAKeyKey]).To(Equal(before.Data[CAKeyKey]))
	v2, _ := f.configs(g)
	g.Expect(v2.ResourceVersion).To(Equal(v.ResourceVersion), "the caBundle did not change")

	// The webhook server picks up the new certificate by itself.
	g.Eventually(func(g Gomega) {
		served, err := callWebhook(addr, f.caBundles(g)[0], f.dnsName(), f.clock.Now())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(served.Equal(leafOf(g, after.Data))).To(BeTrue())
	}).Within(30 * time.Second).Should(Succeed())
}

// TestEnsureRotatesCA replaces the CA while a second replica lags behind
// with a certificate the old CA signed: it keeps being trusted until it
// catches up, and the old CA leaves the bundle once it has expired.
func TestEnsureRotatesCA(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	r, lagging := f.rotator(t), f.rotator(t)
	g.Expect(r.Ensure(t.Context())).To(Succeed())
	oldCA := casOf(g, f.secret(g).Data)[0]

	// Just before the CA is due, the serving certificate is renewed by the
	// old CA, and both replicas serve it.
	f.clock.SetTime(refreshAt(oldCA, DefaultRefreshBefore).Add(-time.Hour))
	g.Expect(r.Ensure(t.Context())).To(Succeed())
	g.Expect(lagging.Ensure(t.Context())).To(Succeed())
	oldLeaf := leafOf(g, f.expectConsistent(g, r, lagging).Data)
	addr := serveWebhooks(t, lagging.CertDir)

	f.clock.Step(2 * time.Hour)
	g.Expect(r.Ensure(t.Context())).To(Succeed())

	rotated := f.expectConsistent(g, r)
	cas := casOf(g, rotated.Data)
	g.Expect(cas).To(HaveLen(2), "the new CA and the old one")
	g.Expect(cas[0].Equal(oldCA)).To(BeFalse())
	g.Expect(cas[1].Equal(oldCA)).To(BeTrue())
	newLeaf := leafOf(g, rotated.Data)
	g.Expect(newLeaf.CheckSignatureFrom(cas[0])).To(Succeed())

	// The lagging replica still serves the old CA's certificate, and the
	// webhook configurations still trust it.
	served, err := callWebhook(addr, f.caBundles(g)[0], f.dnsName(), f.clock.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(served.Equal(oldLeaf)).To(BeTrue())

	// At its next round it catches up, and its webhook server reloads.
	g.Expect(lagging.Ensure(t.Context())).To(Succeed())
	f.expectConsistent(g, r, lagging)
	g.Eventually(func(g Gomega) {
		served, err := callWebhook(addr, f.caBundles(g)[0], f.dnsName(), f.clock.Now())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(served.Equal(newLeaf)).To(BeTrue())
	}).Within(30 * time.Second).Should(Succeed())

	// Once the old CA has expired, the bundle drops it.
	f.clock.SetTime(oldCA.NotAfter.Add(time.Minute))
	g.Expect(r.Ensure(t.Context())).To(Succeed())
	cas = casOf(g, f.expectConsistent(g, r).Data)
	g.Expect(cas).To(HaveLen(1))
	g.Expect(cas[0].Equal(oldCA)).To(BeFalse())
}

func TestEnsureRestoresWipedCABundle(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	r := f.rotator(t)
	g.Expect(r.Ensure(t.Context())).To(Succeed())
	secret := f.secret(g)

	f.wipeCABundles(g)
	g.Expect(r.Ensure(t.Context())).To(Succeed())

	f.expectConsistent(g, r)
	g.Expect(f.secret(g).ResourceVersion).To(Equal(secret.ResourceVersion), "the certificates were kept")
}

func TestStart(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	r := f.rotator(t)
	r.Interval = 100 * time.Millisecond
	g.Expect(r.NeedLeaderElection()).To(BeFalse(), "every replica keeps its own files")

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	defer func() {
		cancel()
		g.Eventually(done).Within(10 * time.Second).Should(Receive(BeNil()))
	}()

	g.Eventually(func(g Gomega) { f.expectConsistent(g, r) }).Within(10 * time.Second).Should(Succeed())
	first := f.secret(g)

	// A configuration re-applied without its caBundle gets it back.
	f.wipeCABundles(g)
	g.Eventually(func(g Gomega) { f.expectConsistent(g, r) }).Within(10 * time.Second).Should(Succeed())

	// A serving certificate due for renewal is renewed.
	f.clock.SetTime(refreshAt(leafOf(g, first.Data), DefaultRefreshBefore).Add(time.Minute))
	g.Eventually(func(g Gomega) {
		s := f.expectConsistent(g, r)
		g.Expect(s.Data[corev1.TLSCertKey]).NotTo(Equal(first.Data[corev1.TLSCertKey]))
	}).Within(10 * time.Second).Should(Succeed())
}

// TestConcurrentEnsure races replicas starting together on a fresh install,
// then again when the CA is due: they end with one Secret and agree on it,
// and the CA is replaced once, not once per replica.
func TestConcurrentEnsure(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	replicas := make([]*Rotator, 4)
	for i := range replicas {
		replicas[i] = f.rotator(t)
	}
	race := func() {
		start := make(chan struct{})
		errs := make([]error, len(replicas))
		var wg sync.WaitGroup
		for i, r := range replicas {
			wg.Go(func() {
				<-start
				errs[i] = r.Ensure(t.Context())
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			g.Expect(err).NotTo(HaveOccurred())
		}
	}

	race()
	first := f.expectConsistent(g, replicas...)
	g.Expect(casOf(g, first.Data)).To(HaveLen(1))

	f.clock.SetTime(refreshAt(casOf(g, first.Data)[0], DefaultRefreshBefore).Add(time.Minute))
	race()
	rotated := f.expectConsistent(g, replicas...)
	cas := casOf(g, rotated.Data)
	g.Expect(cas).To(HaveLen(2), "one new CA beside the old one")
	g.Expect(cas[1].Equal(casOf(g, first.Data)[0])).To(BeTrue())
}

func TestEnsureWithoutWebhookConfiguration(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	r := f.rotator(t)
	late := "late-" + f.ns
	r.ValidatingWebhooks = append(r.ValidatingWebhooks, late)

	// The configurations may be created after the manager starts (Helm
	// installs them last): the webhook server must start all the same.
	complete, err := r.ensure(t.Context())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(complete).To(BeFalse())
	secret := f.expectConsistent(g, r)

	f.createValidating(t, late)
	complete, err = r.ensure(t.Context())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(complete).To(BeTrue())
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	g.Expect(f.c.Get(t.Context(), client.ObjectKey{Name: late}, v)).To(Succeed())
	for _, w := range v.Webhooks {
		g.Expect(w.ClientConfig.CABundle).To(Equal(secret.Data[CACertKey]))
	}
}

func TestEnsureRefusesSecretOfAnotherType(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	r := f.rotator(t)
	theirs := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: r.SecretName},
		Data:       map[string][]byte{"password": []byte("hunter2")},
	}
	g.Expect(f.c.Create(t.Context(), theirs)).To(Succeed())

	g.Expect(r.Ensure(t.Context())).To(MatchError(ContainSubstring(`has type "Opaque"`)))

	g.Expect(f.secret(g).Data).To(Equal(theirs.Data), "left alone")
	g.Expect(os.ReadDir(r.CertDir)).To(BeEmpty())
	for _, b := range f.caBundles(g) {
		g.Expect(b).To(BeEmpty())
	}
}

// TestEnsureNeedsOnlyItsRBAC runs the Rotator as a user granted exactly the
// rules of the +kubebuilder:rbac markers in rotator.go (keep them in step),
// in the namespace and with the names config/ deploys: it needs nothing
// more, and may patch no other webhook configuration.
func TestEnsureNeedsOnlyItsRBAC(t *testing.T) {
	g := NewWithT(t)
	admin := apiServer(t)
	const ns = "custos-system"
	// Never deleted: without a namespace controller, a deleted namespace
	// stays Terminating and refuses new objects, so a second run (-count=2)
	// reuses it.
	if err := admin.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	createObject(t, admin, validatingConfig("custos-validating-webhook-configuration", ns))
	createObject(t, admin, mutatingConfig("custos-mutating-webhook-configuration", ns))
	t.Cleanup(func() {
		_ = admin.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "custos-webhook-tls"}})
	})

	user := "custos-manager-" + rand.String(5)
	createObject(t, admin, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update"}},
		},
	})
	createObject(t, admin, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	})
	createObject(t, admin, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, ResourceNames: []string{"custos-validating-webhook-configuration"}, Verbs: []string{"get", "patch"}},
			{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, ResourceNames: []string{"custos-mutating-webhook-configuration"}, Verbs: []string{"get", "patch"}},
		},
	})
	createObject(t, admin, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	})
	cfg, err := cp.AddUser(user)
	g.Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{})
	g.Expect(err).NotTo(HaveOccurred())

	r := &Rotator{
		Client:             c,
		Namespace:          ns,
		SecretName:         "custos-webhook-tls",
		ServiceName:        "custos-webhook",
		ServiceNamespace:   ns,
		ValidatingWebhooks: []string{"custos-validating-webhook-configuration"},
		MutatingWebhooks:   []string{"custos-mutating-webhook-configuration"},
		CertDir:            t.TempDir(),
	}
	// The API server's RBAC authorizer sees new bindings through an informer.
	g.Eventually(func() error { return r.Ensure(t.Context()) }).Within(10 * time.Second).Should(Succeed())
	secret := &corev1.Secret{}
	g.Expect(admin.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "custos-webhook-tls"}, secret)).To(Succeed())
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	g.Expect(admin.Get(t.Context(), client.ObjectKey{Name: "custos-validating-webhook-configuration"}, v)).To(Succeed())
	g.Expect(v.Webhooks[0].ClientConfig.CABundle).To(Equal(secret.Data[CACertKey]))

	// Anyone else's webhook configuration is out of reach.
	other := "other-" + user
	createObject(t, admin, validatingConfig(other, ns))
	r.ValidatingWebhooks = append(r.ValidatingWebhooks, other)
	err = r.Ensure(t.Context())
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
}
