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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
)

// Secret keys of an awsSTS lease: a shared-credentials file for clients that
// read AWS_SHARED_CREDENTIALS_FILE, and the same values under the names of
// the environment variables the AWS SDKs read, for envFrom.
const (
	AWSCredentialsKey     = "credentials"
	AWSAccessKeyIDKey     = "AWS_ACCESS_KEY_ID"
	AWSSecretAccessKeyKey = "AWS_SECRET_ACCESS_KEY"
	AWSSessionTokenKey    = "AWS_SESSION_TOKEN"
)

// STSAudience is the audience of the ServiceAccount tokens presented to STS,
// as IRSA configures the cluster's OIDC provider in IAM.
const STSAudience = "sts.amazonaws.com"

// webIdentityTokenTTL is the life of the ServiceAccount token exchanged for a
// session or an access token: it is used once, at once, so it gets the
// shortest life the TokenRequest API grants.
const webIdentityTokenTTL = 10 * time.Minute

// maxSessionNameLen is STS's limit on RoleSessionName.
const maxSessionNameLen = 64

// notSessionNameChars is what STS does not accept in a RoleSessionName,
// whose pattern is [\w+=,.@-]*.
var notSessionNameChars = regexp.MustCompile(`[^\w+=,.@-]`)

// stsRefusals are the STS error codes that retrying soon will not cure, by
// the reason they are reported with.
var stsRefusals = map[string]string{
	"AccessDenied":            "AccessDenied",
	"InvalidIdentityToken":    "InvalidIdentityToken",
	"ExpiredToken":            "ExpiredToken",
	"ExpiredTokenException":   "ExpiredToken",
	"IDPRejectedClaim":        "IDPRejectedClaim",
	"MalformedPolicyDocument": "MalformedPolicyDocument",
	"PackedPolicyTooLarge":    "PackedPolicyTooLarge",
	"RegionDisabledException": "RegionDisabled",
	"ValidationError":         "ValidationError",
	"InvalidParameterValue":   "ValidationError",
	"MissingParameter":        "ValidationError",
	"InvalidAction":           "ValidationError",
}

// AWSSTS issues STS sessions of the agent's bound IAM role (IRSA): it
// exchanges a fresh ServiceAccount token of the agent, for the audience
// sts.amazonaws.com, through AssumeRoleWithWebIdentity.
//
// AssumeRoleWithWebIdentity takes no session tags (STS reads them from the
// token's claims, which a ServiceAccount token cannot carry), so the session
// is attributed to the agent by its name: the credential's sessionName, or
// <namespace>.<agent>, which CloudTrail records with every call the
// session makes.
type AWSSTS struct {
	Tokens TokenSource
	// Endpoint is STS's URL; empty means the SDK's regional endpoint of
	// Region.
	Endpoint string
	// Region is the STS region.
	Region string
	// HTTPClient carries the calls; nil means the SDK's default.
	HTTPClient *http.Client
	Clock      clock.PassiveClock
}

// Name implements Backend.
func (a *AWSSTS) Name() string { return BackendAWSSTS }

// Issue implements Backend.
func (a *AWSSTS) Issue(ctx context.Context, req Request) (*Lease, error) {
	spec := req.Credential.AWSSTS
	if spec == nil {
		return nil, fmt.Errorf("credential %s is not an awsSTS credential", req.Credential.Name)
	}
	if req.Identity.AWS == nil || req.Identity.AWS.RoleARN == "" {
		return nil, &RefusedError{Backend: BackendAWSSTS, Reason: "NoAWSIdentity",
			Message: fmt.Sprintf("agent %s/%s has no AWS role bound in spec.identity.aws", req.Namespace, req.Agent)}
	}
	roleARN := req.Identity.AWS.RoleARN
	session := spec.SessionName
	if session == "" {
		session = SessionName(req.Namespace, req.Agent)
	}

	now := nowFrom(a.Clock)
	token, _, err := a.Tokens.ServiceAccountToken(ctx, req.Namespace, req.ServiceAccount, []string{STSAudience}, webIdentityTokenTTL, nil)
	if err != nil {
		return nil, tokenRequestError(BackendAWSSTS, req, err)
	}

	in := &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(roleARN),
		RoleSessionName:  aws.String(session),
		WebIdentityToken: aws.String(token),
	}
	if req.TTL > 0 {
		in.DurationSeconds = aws.Int32(int32(req.TTL / time.Second))
	}
	out, err := a.client().AssumeRoleWithWebIdentity(ctx, in)
	if err != nil {
		return nil, stsError(roleARN, token, err)
	}
	creds := out.Credentials
	if creds == nil || creds.AccessKeyId == nil || creds.SecretAccessKey == nil || creds.SessionToken == nil || creds.Expiration == nil {
		return nil, fmt.Errorf("assuming role %s: STS answered without credentials", roleARN)
	}
	id, secret, sessionToken := *creds.AccessKeyId, *creds.SecretAccessKey, *creds.SessionToken
	file := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n", id, secret, sessionToken)

	attrs := map[string]string{"roleARN": roleARN, "sessionName": session}
	if out.AssumedRoleUser != nil && out.AssumedRoleUser.Arn != nil {
		attrs["assumedRoleARN"] = *out.AssumedRoleUser.Arn
	}
	return &Lease{
		Data: map[string][]byte{
			AWSCredentialsKey:     []byte(file),
			AWSAccessKeyIDKey:     []byte(id),
			AWSSecretAccessKeyKey: []byte(secret),
			AWSSessionTokenKey:    []byte(sessionToken),
		},
		IssuedAt:   now,
		ExpiresAt:  *creds.Expiration,
		Attributes: attrs,
	}, nil
}

// client is an STS client for one call. AssumeRoleWithWebIdentity is not
// signed, so it has no credentials. It does not retry: the reconciler backs
// off and retries a transient failure, and records it, where an SDK retry
// would hold the reconcile for seconds in silence.
func (a *AWSSTS) client() *sts.Client {
	opts := sts.Options{
		Region:      a.Region,
		Credentials: aws.AnonymousCredentials{},
		Retryer:     aws.NopRetryer{},
	}
	if a.Endpoint != "" {
		opts.BaseEndpoint = aws.String(a.Endpoint)
	}
	if a.HTTPClient != nil {
		opts.HTTPClient = a.HTTPClient
	}
	return sts.New(opts)
}

// SessionName is the STS session name that attributes a session to an agent:
// <namespace>.<agent> (a namespace has no dot, so the first one separates
// them), in STS's alphabet, and shortened to STS's 64 characters with a hash
// of the full name so that two long names stay apart.
func SessionName(namespace, agent string) string {
	name := notSessionNameChars.ReplaceAllString(namespace+"."+agent, "-")
	if len(name) <= maxSessionNameLen {
		return name
	}
	sum := sha256.Sum256([]byte(namespace + "/" + agent))
	suffix := hex.EncodeToString(sum[:4])
	return name[:maxSessionNameLen-len(suffix)-1] + "-" + suffix
}

// stsError sorts an AssumeRoleWithWebIdentity failure into a refusal or a
// transient error. STS does not echo the token, but the message is scrubbed
// of it all the same: it ends up in conditions and events.
func stsError(roleARN, token string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if reason := stsRefusals[apiErr.ErrorCode()]; reason != "" {
			return &RefusedError{Backend: BackendAWSSTS, Reason: reason,
				Message: fmt.Sprintf("assuming role %s: %s", roleARN, redact(apiErr.ErrorMessage(), token))}
		}
	}
	if token != "" && strings.Contains(err.Error(), token) {
		return fmt.Errorf("assuming role %s: %s", roleARN, redact(err.Error(), token))
	}
	return fmt.Errorf("assuming role %s: %w", roleARN, err)
}

// tokenRequestError sorts a failed TokenRequest of a cloud backend.
func tokenRequestError(backend string, req Request, err error) error {
	if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return &RefusedError{Backend: backend, Reason: "TokenRequestRefused", Message: err.Error()}
	}
	return fmt.Errorf("requesting a token of ServiceAccount %s/%s: %w", req.Namespace, req.ServiceAccount, err)
}

// redact removes secret from s.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}
