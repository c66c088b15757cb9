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
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Defaults of the Rotator's settings.
const (
	DefaultCALifetime    = 10 * 365 * 24 * time.Hour
	DefaultCertLifetime  = 365 * 24 * time.Hour
	DefaultRefreshBefore = 1.0 / 3

	// DefaultInterval is short next to any certificate's lifetime because
	// it also bounds how long a webhook configuration re-applied without its
	// caBundle (by a GitOps tool, say) stays broken; a round costs a few
	// GETs.
	DefaultInterval = 10 * time.Minute
)

// firstRetry is how soon Start tries again after a round that failed or
// found a webhook configuration missing; it doubles up to Interval.
const firstRetry = 5 * time.Second

// maxRounds bounds how often one Ensure goes round because another replica
// changed the Secret under it; past it, the next Ensure carries on.
const maxRounds = 5

// fieldOwner is the field manager of the caBundle patches, so that
// managedFields tell who set the caBundle.
const fieldOwner = "custos"

// The Secret lives in Custos's own namespace, so a Role rather than a
// ClusterRole covers it. It is read by name (get), never listed or watched:
// nothing here needs a cache of the namespace's Secrets. Writes are create
// (first replica) and update conditioned on the resourceVersion read (patch
// is not needed).
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update,namespace=custos-system

// Webhook configurations are cluster-scoped, and whoever may patch one may
// make the API server trust any CA for it. The Rotator reads them by name
// and patches their caBundle, so it gets exactly get and patch on Custos's
// own configurations (the names config/webhook gives them), no list or
// watch, and nothing on anyone else's.
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;patch,resourceNames=custos-validating-webhook-configuration
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;patch,resourceNames=custos-mutating-webhook-configuration

// Rotator creates and rotates the serving certificate of the manager's
// admission webhook server. Every replica runs one: replicas agree through
// the Secret, and each keeps its own files current.
type Rotator struct {
	// Client writes the Secret and patches the webhook configurations. It
	// also reads them unless APIReader is set; a cached client must not
	// read here, both because Ensure runs before the manager's cache starts
	// and because caching Secrets would need list and watch on them.
	Client client.Client

	// APIReader, when set, reads the Secret and the webhook configurations
	// instead of Client: mgr.GetAPIReader().
	APIReader client.Reader

	// Namespace and SecretName locate the Secret that holds the CA and the
	// serving certificate: type kubernetes.io/tls, plus ca.crt and ca.key.
	Namespace, SecretName string

	// ServiceName and ServiceNamespace name the Service in front of the
	// webhook server; the serving certificate is for
	// <ServiceName>.<ServiceNamespace>.svc and the same under
	// .cluster.local.
	ServiceName, ServiceNamespace string

	// ValidatingWebhooks and MutatingWebhooks name the webhook
	// configurations every webhook of which must trust the CA.
	ValidatingWebhooks []string
	MutatingWebhooks   []string

	// CertDir is where tls.crt and tls.key are written for the webhook
	// server, whose certificate watcher reloads them.
	CertDir string

	// CALifetime and CertLifetime are how long a new CA and a new serving
	// certificate are valid: DefaultCALifetime and DefaultCertLifetime
	// when zero.
	CALifetime, CertLifetime time.Duration

	// RefreshBefore is the fraction of a certificate's lifetime left when it
	// is replaced: DefaultRefreshBefore when zero.
	RefreshBefore float64

	// Interval is how often Start runs Ensure: DefaultInterval when zero.
	Interval time.Duration

	// Clock tells the time certificates are judged and issued at; tests
	// replace it to move past renewals.
	Clock clock.PassiveClock
}

var (
	_ manager.Runnable               = (*Rotator)(nil)
	_ manager.LeaderElectionRunnable = (*Rotator)(nil)
)

// NeedLeaderElection is false: every replica serves webhooks, so every
// replica must keep its own files current, leader or not.
func (r *Rotator) NeedLeaderElection() bool { return false }

// Start runs Ensure at once and then every Interval, so that certificates
// are replaced before they expire and a webhook configuration that lost its
// caBundle gets it back, until ctx ends. A failed round is retried sooner;
// it does not stop the manager, since the files already written keep
// serving.
func (r *Rotator) Start(ctx context.Context) error {
	if _, err := r.params(); err != nil {
		return err
	}
	log := ctrl.LoggerFrom(ctx).WithName("certs")
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	backoff := min(firstRetry, interval)
	for {
		next := interval
		complete, err := r.ensure(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			log.Error(err, "Ensuring the webhook serving certificate; trying again", "after", backoff)
			next, backoff = backoff, min(2*backoff, interval)
		case !complete:
			next, backoff = backoff, min(2*backoff, interval)
		default:
			backoff = min(firstRetry, interval)
		}
		// Jitter keeps replicas started together from polling together.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait.Jitter(next, 0.1)):
		}
	}
}

// Ensure makes sure the Secret holds a CA and a serving certificate that are
// valid and not due for renewal, creating or replacing them as needed;
// injects the CA bundle into the webhook configurations; and writes the
// serving certificate to CertDir. Call it once before the manager starts:
// the webhook server needs the files to exist. A webhook configuration that
// does not exist yet is skipped (Start injects it once it appears).
func (r *Rotator) Ensure(ctx context.Context) error {
	_, err := r.ensure(ctx)
	return err
}

// ensure is Ensure, also telling whether every webhook configuration was
// found.
func (r *Rotator) ensure(ctx context.Context) (bool, error) {
	p, err := r.params()
	if err != nil {
		return false, err
	}
	ctx = ctrl.LoggerInto(ctx, ctrl.LoggerFrom(ctx).WithName("certs"))
	key := client.ObjectKey{Namespace: r.Namespace, Name: r.SecretName}
	for range maxRounds {
		secret, err := r.ensureSecret(ctx, p)
		if err != nil {
			return false, err
		}
		// The bundle goes out before the files: the API server must trust a
		// new CA before this replica serves a certificate it signed.
		complete, err := r.injectCABundle(ctx, secret.Data[CACertKey])
		if err != nil {
			return false, err
		}
		if err := writeFiles(r.CertDir, secret.Data); err != nil {
			return false, err
		}
		// A replica that read the Secret just before another replaced it has
		// just injected the older bundle, perhaps over the newer one. Whoever
		// sees the Secret changed since reading it goes round again, so the
		// last injection is always of the latest bundle.
		latest := &corev1.Secret{}
		if err := r.reader().Get(ctx, key, latest); err != nil {
			return false, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		if latest.ResourceVersion == secret.ResourceVersion {
			return complete, nil
		}
	}
	return false, fmt.Errorf("secret %s changed %d times while being ensured", key, maxRounds)
}

// ensureSecret returns the Secret with a valid CA and serving certificate,
// creating or renewing them. Replicas must not fight over it: it is created
// only if absent and updated only at the resourceVersion read, and the
// loser of a race judges the winner's Secret afresh rather than writing its
// own.
func (r *Rotator) ensureSecret(ctx context.Context, p params) (*corev1.Secret, error) {
	log := ctrl.LoggerFrom(ctx).WithValues("secret", klog.KRef(r.Namespace, r.SecretName))
	key := client.ObjectKey{Namespace: r.Namespace, Name: r.SecretName}
	for range maxRounds {
		now := r.clock().Now()
		secret := &corev1.Secret{}
		err := r.reader().Get(ctx, key, secret)
		switch {
		case apierrors.IsNotFound(err):
			ren, err := renew(nil, p, now)
			if err != nil {
				return nil, err
			}
			secret = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: r.Namespace,
					Name:      r.SecretName,
					Labels:    map[string]string{custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue},
				},
				Type: corev1.SecretTypeTLS,
				Data: ren.data,
			}
			err = r.Client.Create(ctx, secret)
			if apierrors.IsAlreadyExists(err) {
				log.V(1).Info("Another replica created the Secret first; judging theirs")
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("creating Secret %s: %w", key, err)
			}
			log.Info("Created the webhook CA and serving certificate", "notAfter", notAfter(secret.Data))
			return secret, nil
		case err != nil:
			return nil, fmt.Errorf("reading Secret %s: %w", key, err)
		}

		// The type is immutable, and a Secret of another type was not made
		// here: better to say so than to overwrite what someone else keeps.
		if secret.Type != corev1.SecretTypeTLS {
			return nil, fmt.Errorf("secret %s has type %q, not %q: delete it or choose another name", key, secret.Type, corev1.SecretTypeTLS)
		}
		ren, err := renew(secret.Data, p, now)
		if err != nil {
			return nil, err
		}
		if ren.data == nil {
			return secret, nil
		}
		secret.Data = ren.data
		if secret.Labels == nil {
			secret.Labels = map[string]string{}
		}
		secret.Labels[custosv1alpha1.ManagedByLabel] = custosv1alpha1.ManagedByValue
		err = r.Client.Update(ctx, secret)
		if apierrors.IsConflict(err) {
			log.V(1).Info("Another replica changed the Secret first; judging its version")
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("updating Secret %s: %w", key, err)
		}
		switch {
		case ren.caReason != "":
			log.Info("Replaced the webhook CA and serving certificate", "reason", ren.caReason, "notAfter", notAfter(secret.Data))
		case ren.certReason != "":
			log.Info("Reissued the webhook serving certificate", "reason", ren.certReason, "notAfter", notAfter(secret.Data))
		default:
			log.Info("Dropped expired CAs from the webhook CA bundle")
		}
		return secret, nil
	}
	return nil, fmt.Errorf("secret %s changed %d times while being renewed", key, maxRounds)
}

// notAfter is when the serving certificate in data expires, for logs.
func notAfter(data map[string][]byte) string {
	s := decodeSecret(data)
	if s.leaf == nil {
		return ""
	}
	return s.leaf.NotAfter.UTC().Format(time.RFC3339)
}

// webhookKind knows where the caBundles of one kind of webhook
// configuration are.
type webhookKind struct {
	name      string
	newObject func() client.Object
	caBundles func(client.Object) []*[]byte
}

var (
	validatingKind = webhookKind{
		name:      "ValidatingWebhookConfiguration",
		newObject: func() client.Object { return &admissionregistrationv1.ValidatingWebhookConfiguration{} },
		caBundles: func(o client.Object) []*[]byte {
			c := o.(*admissionregistrationv1.ValidatingWebhookConfiguration)
			b := make([]*[]byte, len(c.Webhooks))
			for i := range c.Webhooks {
				b[i] = &c.Webhooks[i].ClientConfig.CABundle
			}
			return b
		},
	}
	mutatingKind = webhookKind{
		name:      "MutatingWebhookConfiguration",
		newObject: func() client.Object { return &admissionregistrationv1.MutatingWebhookConfiguration{} },
		caBundles: func(o client.Object) []*[]byte {
			c := o.(*admissionregistrationv1.MutatingWebhookConfiguration)
			b := make([]*[]byte, len(c.Webhooks))
			for i := range c.Webhooks {
				b[i] = &c.Webhooks[i].ClientConfig.CABundle
			}
			return b
		},
	}
)

// injectCABundle sets the caBundle of every webhook of the configurations to
// bundle, and tells whether it found them all.
func (r *Rotator) injectCABundle(ctx context.Context, bundle []byte) (bool, error) {
	complete := true
	var errs []error
	for _, n := range []struct {
		kind  webhookKind
		names []string
	}{{validatingKind, r.ValidatingWebhooks}, {mutatingKind, r.MutatingWebhooks}} {
		for _, name := range n.names {
			found, err := r.inject(ctx, n.kind, name, bundle)
			complete = complete && found
			errs = append(errs, err)
		}
	}
	return complete, errors.Join(errs...)
}

func (r *Rotator) inject(ctx context.Context, kind webhookKind, name string, bundle []byte) (found bool, err error) {
	log := ctrl.LoggerFrom(ctx).WithValues(kind.name, klog.KRef("", name))
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj := kind.newObject()
		if err := r.reader().Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				found = false
				return nil
			}
			return err
		}
		found = true
		orig := obj.DeepCopyObject().(client.Object)
		changed := 0
		for _, b := range kind.caBundles(obj) {
			if !bytes.Equal(*b, bundle) {
				*b = bytes.Clone(bundle)
				changed++
			}
		}
		if changed == 0 {
			return nil
		}
		// The lock makes a patch based on a stale read fail and go round,
		// rather than put back webhooks someone else just changed.
		if err := r.Client.Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(fieldOwner)); err != nil {
			return err
		}
		log.Info("Injected the webhook CA bundle", "webhooks", changed)
		return nil
	})
	if err != nil {
		return found, fmt.Errorf("injecting the CA bundle into %s %s: %w", kind.name, name, err)
	}
	if !found {
		log.Info("Webhook configuration not found; its CA bundle will be injected once it exists")
	}
	return found, nil
}

// writeFiles writes the serving certificate and key of data to dir, each
// only when it differs from what is there.
func writeFiles(dir string, data map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The key goes first. Between the two renames the webhook server's
	// certificate watcher may read a pair that does not match; it keeps
	// the certificate it has, and reads again on the second rename.
	for _, f := range []struct {
		name string
		perm os.FileMode
	}{{corev1.TLSPrivateKeyKey, 0o600}, {corev1.TLSCertKey, 0o644}} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), data[f.name], f.perm); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic replaces path with content by renaming a temporary file
// over it, so that a reader sees the old content or the new, never half of
// either.
func writeFileAtomic(path string, content []byte, perm os.FileMode) (err error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(content); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Chmod(perm); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	err = os.Rename(tmp.Name(), path)
	return err
}

func (r *Rotator) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

func (r *Rotator) clock() clock.PassiveClock {
	if r.Clock != nil {
		return r.Clock
	}
	return clock.RealClock{}
}

// params checks the Rotator's settings and fills in the defaults.
func (r *Rotator) params() (params, error) {
	p := params{
		caLifetime:    r.CALifetime,
		certLifetime:  r.CertLifetime,
		refreshBefore: r.RefreshBefore,
	}
	if p.caLifetime == 0 {
		p.caLifetime = DefaultCALifetime
	}
	if p.certLifetime == 0 {
		p.certLifetime = DefaultCertLifetime
	}
	if p.refreshBefore == 0 {
		p.refreshBefore = DefaultRefreshBefore
	}
	var errs []error
	if r.Client == nil {
		errs = append(errs, errors.New("no Client"))
	}
	for _, f := range []struct{ name, value string }{
		{"Namespace", r.Namespace},
		{"SecretName", r.SecretName},
		{"ServiceName", r.ServiceName},
		{"ServiceNamespace", r.ServiceNamespace},
		{"CertDir", r.CertDir},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("no %s", f.name))
		}
	}
	if !(p.refreshBefore > 0 && p.refreshBefore < 1) {
		errs = append(errs, fmt.Errorf("RefreshBefore is %v, not between 0 and 1", p.refreshBefore))
	} else {
		// A certificate must not be due for renewal the moment it is
		// issued, or every round would replace it. Its lifetime counts
		// the backdating, so the shortest lifetime depends on
		// RefreshBefore. Checking the CA's lifetime also covers serving
		// certificates cut short by their CA's expiry.
		for _, l := range []struct {
			name  string
			value time.Duration
		}{{"CALifetime", p.caLifetime}, {"CertLifetime", p.certLifetime}} {
			if float64(l.value)*(1-p.refreshBefore) <= p.refreshBefore*float64(backdate) {
				errs = append(errs, fmt.Errorf("%s %s is too short to renew with RefreshBefore %v", l.name, l.value, p.refreshBefore))
			}
		}
	}
	if len(errs) > 0 {
		return params{}, fmt.Errorf("invalid certificate rotator: %w", errors.Join(errs...))
	}
	p.dnsNames = serviceDNSNames(r.ServiceName, r.ServiceNamespace)
	return p, nil
}
