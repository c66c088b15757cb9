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

package pii

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// What the tenant's policy does to a value found (issue #24, item 3; the
// gateway applies them, this file makes them): mask it (<EMAIL>), hash it
// (a keyed digest: stable for joins, not reversible without the key), or
// tokenize it (deterministic authenticated encryption under the tenant's
// key: only someone allowed to detokenize reads it back).
type Action string

const (
	ActionMask     Action = "mask"
	ActionHash     Action = "hash"
	ActionTokenize Action = "tokenize"
)

// Keys are a tenant's keys for hashing and tokenizing, derived from its
// one secret so that neither use weakens the other.
type Keys struct {
	hash, mac, enc []byte
}

// DeriveKeys derives a tenant's keys from its secret (at least 32 bytes).
func DeriveKeys(secret []byte) (*Keys, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("a tenant's PII key is at least 32 bytes, not %d", len(secret))
	}
	k := &Keys{}
	for _, d := range []struct {
		info string
		to   *[]byte
	}{{"custos.dev/pii/hash/v1", &k.hash}, {"custos.dev/pii/token-mac/v1", &k.mac}, {"custos.dev/pii/token-enc/v1", &k.enc}} {
		b, err := hkdf.Key(sha256.New, secret, nil, d.info, 32)
		if err != nil {
			return nil, err
		}
		*d.to = b
	}
	return k, nil
}

// tokenEncoding writes hashes and tokens in lower-case base32, which no
// recognizer takes for personal data or a secret (the trail's
// high-entropy rule wants upper and lower case and digits).
var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// labelSeparators are what a type's label writes as underscores.
var labelSeparators = strings.NewReplacer(":", "_", "-", "_")

// label is how a type is written in what replaces a value: EMAIL,
// CUSTOM_EMPLOYEE_ID.
func label(t Type) string {
	return strings.ToUpper(labelSeparators.Replace(string(t)))
}

// Transform returns text with each finding replaced as action says:
// <TYPE> (mask), <TYPE:h:digest> (hash), <TYPE:t:token> (tokenize).
// findings are Scan's (in order, not overlapping). keys may be nil for
// mask.
func Transform(text string, findings []Finding, action Action, keys *Keys) (string, error) {
	if action != ActionMask && keys == nil {
		return "", fmt.Errorf("%s needs the tenant's keys", action)
	}
	var b strings.Builder
	last := 0
	for _, f := range findings {
		if f.Start < last || f.End > len(text) {
			return "", errors.New("findings out of order or out of the text")
		}
		b.WriteString(text[last:f.Start])
		value := text[f.Start:f.End]
		switch action {
		case ActionMask:
			b.WriteString("<" + label(f.Type) + ">")
		case ActionHash:
			b.WriteString("<" + label(f.Type) + ":h:" + keys.Hash(label(f.Type), value) + ">")
		case ActionTokenize:
			tok, err := keys.Tokenize(label(f.Type), value)
			if err != nil {
				return "", err
			}
			b.WriteString("<" + label(f.Type) + ":t:" + tok + ">")
		default:
			return "", fmt.Errorf("no action %q", action)
		}
		last = f.End
	}
	b.WriteString(text[last:])
	return b.String(), nil
}

// Hash is the keyed digest of value of the type labelled kind (EMAIL):
// HMAC-SHA-256 under the tenant's hash key, its first 80 bits; the same
// value hashes the same.
func (k *Keys) Hash(kind, value string) string {
	m := hmac.New(sha256.New, k.hash)
	m.Write([]byte(kind + "\x00" + value))
	return tokenEncoding.EncodeToString(m.Sum(nil)[:10])
}

// Tokenize encrypts value of the type labelled kind (EMAIL)
// deterministically: AES-256-GCM under the tenant's key with a synthetic
// nonce (the first 96 bits of an HMAC of the kind and value), the kind as
// associated data. The same value gives the same token, so joins hold;
// only the key reads it back.
func (k *Keys) Tokenize(kind, value string) (string, error) {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(kind + "\x00" + value))
	nonce := m.Sum(nil)[:12]
	aead, err := k.aead()
	if err != nil {
		return "", err
	}
	sealed := aead.Seal(nil, nonce, []byte(value), []byte(kind))
	return tokenEncoding.EncodeToString(append(nonce, sealed...)), nil
}

// Detokenize reads back a token of the type labelled kind, or says it is
// not one of this key's: altered, of another type, or of another tenant.
func (k *Keys) Detokenize(kind, token string) (string, error) {
	raw, err := tokenEncoding.DecodeString(token)
	if err != nil || len(raw) < 12+16 {
		return "", errors.New("not a token")
	}
	aead, err := k.aead()
	if err != nil {
		return "", err
	}
	value, err := aead.Open(nil, raw[:12], raw[12:], []byte(kind))
	if err != nil {
		return "", errors.New("not a token of this tenant and type")
	}
	// The nonce is the value's own: a token made otherwise is refused.
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(kind + "\x00" + string(value)))
	if !hmac.Equal(m.Sum(nil)[:12], raw[:12]) {
		return "", errors.New("not a token of this tenant and type")
	}
	return string(value), nil
}

func (k *Keys) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.enc)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// tokenPattern is a tokenized value in text.
var tokenPattern = regexp.MustCompile(`<([A-Z0-9_]+):t:([a-z2-7]+)>`)

// Tokens are the tokens in text, with their types' labels, for showing
// them to someone allowed to detokenize.
func Tokens(text string) (spans [][2]int, labels, tokens []string) {
	for _, m := range tokenPattern.FindAllStringSubmatchIndex(text, -1) {
		spans = append(spans, [2]int{m[0], m[1]})
		labels = append(labels, text[m[2]:m[3]])
		tokens = append(tokens, text[m[4]:m[5]])
	}
	return spans, labels, tokens
}
