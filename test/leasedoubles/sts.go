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

package leasedoubles

import (
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

const (
	stsVersion = "2011-06-15"
	// stsAudience is the audience STS accepts, as IRSA registers the
	// cluster's identity provider.
	stsAudience = "sts.amazonaws.com"
)

var (
	roleARNPattern     = regexp.MustCompile(`^arn:(aws[a-z-]*):iam::([0-9]{12}):role/(?:[\x21-\x7E]*/)?([\w+=,.@-]{1,64})$`)
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]*$`)
)

// STS is a test double of AWS STS serving AssumeRoleWithWebIdentity on
// 127.0.0.1, over plain HTTP: give URL to the SDK as its BaseEndpoint.
//
// It verifies the web identity token as STS does for an OIDC provider
// registered in IAM: signed by the cluster's keys, issued by its issuer, for
// the audience sts.amazonaws.com and not expired. A role it knows trusts the
// subjects TrustRole gave it; anything else is AccessDenied.
type STS struct {
	faults

	// URL is the double's endpoint, http://127.0.0.1:<port>.
	URL string

	srv    *httptest.Server
	issuer *issuer

	mu          sync.Mutex
	roles       map[string][]string
	maxDuration time.Duration
	sessions    []Session
}

// Session is a session the double issued.
type Session struct {
	RoleARN        string
	AssumedRoleARN string
	SessionName    string
	// Subject is the web identity token's subject.
	Subject         string
	AccessKeyID     string
	DurationSeconds int
	Expiration      time.Time
}

// NewSTS starts an STS double that trusts the tokens of the cluster cfg
// connects to. Close it when done.
func NewSTS(ctx context.Context, cfg *rest.Config) (*STS, error) {
	iss, err := newIssuer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's token issuer: %w", err)
	}
	l, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	s := &STS{issuer: iss, roles: map[string][]string{}, maxDuration: 12 * time.Hour}
	s.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}}
	s.srv.Start()
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the double.
func (s *STS) Close() { s.srv.Close() }

// TrustRole makes roleARN a role the double knows, whose trust policy lets
// the given subjects (see Subject) assume it. It adds to the subjects
// trusted before.
func (s *STS) TrustRole(roleARN string, subjects ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[roleARN] = append(s.roles[roleARN], subjects...)
}

// SetMaxSessionDuration is the roles' maximum session duration (12h unless
// set): a longer DurationSeconds is a ValidationError.
func (s *STS) SetMaxSessionDuration(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxDuration = d
}

// Sessions are the sessions issued so far, oldest first.
func (s *STS) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sessions)
}

// Session is the session whose access key ID is id.
func (s *STS) Session(id string) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ses := range s.sessions {
		if ses.AccessKeyID == id {
			return ses, true
		}
	}
	return Session{}, false
}

// stsError is an STS error answer.
type stsError struct {
	status  int
	code    string
	message string
}

func (s *STS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f, fail := s.next(); fail {
		if f.Code == "" {
			w.WriteHeader(f.Status)
			return
		}
		writeSTSError(w, &stsError{status: f.Status, code: f.Code, message: f.Message})
		return
	}
	if r.URL.Path != "/" || (r.Method != http.MethodPost && r.Method != http.MethodGet) {
		writeSTSError(w, &stsError{http.StatusNotFound, "UnknownOperationException", "no such operation"})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeSTSError(w, &stsError{http.StatusBadRequest, "MalformedQueryString", err.Error()})
		return
	}
	if action := r.Form.Get("Action"); action != "AssumeRoleWithWebIdentity" || r.Form.Get("Version") != stsVersion {
		writeSTSError(w, &stsError{http.StatusBadRequest, "InvalidAction",
			fmt.Sprintf("Could not find operation %s for version %s", action, r.Form.Get("Version"))})
		return
	}
	res, serr := s.assumeRoleWithWebIdentity(r.Context(), r)
	if serr != nil {
		writeSTSError(w, serr)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", res.ResponseMetadata.RequestID)
	_ = xml.NewEncoder(w).Encode(res)
}

func (s *STS) assumeRoleWithWebIdentity(ctx context.Context, r *http.Request) (*assumeRoleResponse, *stsError) {
	roleARN, sessionName, token := r.Form.Get("RoleArn"), r.Form.Get("RoleSessionName"), r.Form.Get("WebIdentityToken")
	var problems []string
	for _, p := range []struct{ name, value string }{{"roleArn", roleARN}, {"roleSessionName", sessionName}, {"webIdentityToken", token}} {
		if p.value == "" {
			problems = append(problems, fmt.Sprintf("Value null at '%s' failed to satisfy constraint: Member must not be null", p.name))
		}
	}
	role := roleARNPattern.FindStringSubmatch(roleARN)
	if roleARN != "" && role == nil {
		problems = append(problems, fmt.Sprintf("Value '%s' at 'roleArn' failed to satisfy constraint: Member must be a role ARN", roleARN))
	}
	if sessionName != "" && (len(sessionName) < 2 || len(sessionName) > 64 || !sessionNamePattern.MatchString(sessionName)) {
		problems = append(problems, fmt.Sprintf("Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64", sessionName))
	}
	duration := 3600
	if d := r.Form.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must be an integer", d))
		case n < 900:
			problems = append(problems, fmt.Sprintf("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900", n))
		case n > 43200:
			problems = append(problems, fmt.Sprintf("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200", n))
		}
		duration = n
	}
	if len(problems) > 0 {
		return nil, &stsError{http.StatusBadRequest, "ValidationError",
			fmt.Sprintf("%d validation error(s) detected: %s", len(problems), strings.Join(problems, "; "))}
	}

	now := time.Now()
	c, err := s.issuer.verify(ctx, token, stsAudience, now)
	var terr *tokenError
	switch {
	case errors.As(err, &terr) && terr.kind == tokenExpired:
		return nil, &stsError{http.StatusBadRequest, "ExpiredTokenException", "Token expired: " + terr.msg}
	case errors.As(err, &terr) && terr.kind == tokenAudience:
		return nil, &stsError{http.StatusBadRequest, "InvalidIdentityToken", "Incorrect token audience"}
	case errors.As(err, &terr) && terr.kind == tokenIssuer:
		return nil, &stsError{http.StatusBadRequest, "InvalidIdentityToken", "No OpenIDConnect provider found in your account for the token's issuer"}
	case errors.As(err, &terr):
		return nil, &stsError{http.StatusBadRequest, "InvalidIdentityToken", "The web identity token that was passed could not be validated by AWS: " + terr.msg}
	case err != nil:
		return nil, &stsError{http.StatusBadRequest, "IDPCommunicationError", "The identity provider could not be reached"}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	trusted, known := s.roles[roleARN]
	if !known || !slices.Contains(trusted, c.Subject) {
		return nil, &stsError{http.StatusForbidden, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"}
	}
	if time.Duration(duration)*time.Second > s.maxDuration {
		return nil, &stsError{http.StatusBadRequest, "ValidationError",
			"The requested DurationSeconds exceeds the MaxSessionDuration set for this role."}
	}

	partition, account, roleName := role[1], role[2], role[3]
	sum := sha256.Sum256([]byte(roleARN))
	roleID := "AROA" + strings.ToUpper(fmt.Sprintf("%x", sum[:])[:17])
	ses := Session{
		RoleARN:         roleARN,
		AssumedRoleARN:  fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", partition, account, roleName, sessionName),
		SessionName:     sessionName,
		Subject:         c.Subject,
		AccessKeyID:     "ASIA" + randomString(16, upperDigits),
		DurationSeconds: duration,
		Expiration:      now.Add(time.Duration(duration) * time.Second).UTC().Truncate(time.Second),
	}
	s.sessions = append(s.sessions, ses)

	res := &assumeRoleResponse{}
	res.ResponseMetadata.RequestID = requestID()
	out := &res.Result
	out.SubjectFromWebIdentityToken = c.Subject
	out.Audience = stsAudience
	out.AssumedRoleUser.Arn = ses.AssumedRoleARN
	out.AssumedRoleUser.AssumedRoleID = roleID + ":" + sessionName
	out.Credentials.SessionToken = "IQoJb3JpZ2luX2VjE" + randomString(380, base64Chars)
	out.Credentials.SecretAccessKey = randomString(40, base64Chars)
	out.Credentials.Expiration = ses.Expiration.Format(time.RFC3339)
	out.Credentials.AccessKeyID = ses.AccessKeyID
	out.Provider = fmt.Sprintf("arn:%s:iam::%s:oidc-provider/%s", partition, account, strings.TrimPrefix(c.Issuer, "https://"))
	return res, nil
}

// assumeRoleResponse is AssumeRoleWithWebIdentity's answer, element for
// element (and in STS's order) as STS writes it.
type assumeRoleResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleWithWebIdentityResponse"`
	Result  struct {
		SubjectFromWebIdentityToken string
		Audience                    string
		AssumedRoleUser             struct {
			Arn           string
			AssumedRoleID string `xml:"AssumedRoleId"`
		}
		Credentials struct {
			SessionToken    string
			SecretAccessKey string
			Expiration      string
			AccessKeyID     string `xml:"AccessKeyId"`
		}
		Provider string
	} `xml:"AssumeRoleWithWebIdentityResult"`
	ResponseMetadata struct {
		RequestID string `xml:"RequestId"`
	}
}

// errorResponse is an STS error, as STS writes it.
type errorResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
	Error   struct {
		Type    string
		Code    string
		Message string
	}
	RequestID string `xml:"RequestId"`
}

func writeSTSError(w http.ResponseWriter, e *stsError) {
	res := &errorResponse{RequestID: requestID()}
	res.Error.Type, res.Error.Code, res.Error.Message = "Sender", e.code, e.message
	if e.status >= 500 {
		res.Error.Type = "Receiver"
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", res.RequestID)
	w.WriteHeader(e.status)
	_ = xml.NewEncoder(w).Encode(res)
}
