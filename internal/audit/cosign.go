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

package audit

import (
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"
)

// cosignKey is the body of a cosign private key file: a PKCS#8 key sealed
// with NaCl secretbox under a key that scrypt derives from the password.
type cosignKey struct {
	KDF struct {
		Name   string `json:"name"`
		Params struct {
			N int `json:"N"`
			R int `json:"r"`
			P int `json:"p"`
		} `json:"params"`
		Salt []byte `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

// decryptCosignKey returns the PKCS#8 DER inside a cosign key file's PEM
// body.
func decryptCosignKey(body, password []byte) ([]byte, error) {
	var k cosignKey
	if err := json.Unmarshal(body, &k); err != nil {
		return nil, fmt.Errorf("cosign key: %v", err)
	}
	if k.KDF.Name != "scrypt" || k.Cipher.Name != "nacl/secretbox" {
		return nil, fmt.Errorf("cosign key: kdf %q and cipher %q are not scrypt and nacl/secretbox", k.KDF.Name, k.Cipher.Name)
	}
	// Bounded, so that a crafted file cannot make scrypt take minutes or
	// gigabytes; cosign writes N=32768 (2^15) or 65536, r=8, p=1.
	n, r, p := k.KDF.Params.N, k.KDF.Params.R, k.KDF.Params.P
	if n < 1<<14 || n > 1<<20 || n&(n-1) != 0 || r != 8 || p != 1 {
		return nil, fmt.Errorf("cosign key: unexpected scrypt parameters N=%d r=%d p=%d", n, r, p)
	}
	if len(k.Cipher.Nonce) != 24 {
		return nil, errors.New("cosign key: the nonce is not 24 bytes")
	}
	key, err := scrypt.Key(password, k.KDF.Salt, n, r, p, 32)
	if err != nil {
		return nil, fmt.Errorf("cosign key: %v", err)
	}
	var boxKey [32]byte
	var nonce [24]byte
	copy(boxKey[:], key)
	copy(nonce[:], k.Cipher.Nonce)
	der, ok := secretbox.Open(nil, k.Ciphertext, &nonce, &boxKey)
	if !ok {
		return nil, errors.New("cosign key: decryption failed (wrong password?)")
	}
	return der, nil
}
