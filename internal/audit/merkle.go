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
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The Merkle tree over a log: leaf i is the 32 bytes of the hash of the
// record with seq i, hashed as RFC 6962 says (SHA-256 of 0x00 and the
// leaf); a checkpoint of size n carries the tree hash of leaves 0..n-1.

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// tree keeps the compact range of a growing log: O(log n) hashes.
type tree struct{ r *compact.Range }

func newTree() *tree { return &tree{r: rangeFactory.NewEmptyRange(0)} }

// append adds a record hash ("sha256:<hex>") as the next leaf.
func (t *tree) append(recordHash string) error {
	raw, err := parseHash(recordHash)
	if err != nil {
		return err
	}
	return t.r.Append(rfc6962.DefaultHasher.HashLeaf(raw), nil)
}

func (t *tree) size() uint64 { return t.r.End() }

// root returns the tree hash as "sha256:<hex>".
func (t *tree) root() string {
	if t.r.End() == 0 {
		return formatHash(rfc6962.DefaultHasher.EmptyRoot())
	}
	h, err := t.r.GetRootHash(nil)
	if err != nil { // only for a range that does not begin at 0
		panic(err)
	}
	return formatHash(h)
}

// InclusionProof is the RFC 6962 audit path that proves the record with
// seq Index is leaf Index of the tree of Size leaves whose root a
// checkpoint signed.
type InclusionProof struct {
	Index uint64   `json:"index"`
	Size  uint64   `json:"size"`
	Leaf  string   `json:"leaf"` // the record hash
	Root  string   `json:"root"`
	Path  []string `json:"path"`
}

// ProveInclusion builds the proof that the record hash at index is in the
// tree over the first size of hashes (record hashes in seq order).
func ProveInclusion(hashes []string, index, size uint64) (*InclusionProof, error) {
	if size > uint64(len(hashes)) || index >= size {
		return nil, fmt.Errorf("cannot prove leaf %d in a tree of %d leaves (have %d)", index, size, len(hashes))
	}
	leaves := make([][]byte, size)
	for i := range leaves {
		raw, err := parseHash(hashes[i])
		if err != nil {
			return nil, fmt.Errorf("record seq %d: %v", i, err)
		}
		leaves[i] = rfc6962.DefaultHasher.HashLeaf(raw)
	}
	p := &InclusionProof{Index: index, Size: size, Leaf: hashes[index], Root: formatHash(subtreeHash(leaves))}
	for _, h := range auditPath(index, leaves) {
		p.Path = append(p.Path, formatHash(h))
	}
	return p, nil
}

// auditPath is RFC 6962 section 2.1.1's PATH(m, D[n]), leaves already
// hashed, nodes listed from the leaf up.
func auditPath(m uint64, leaves [][]byte) [][]byte {
	n := uint64(len(leaves))
	if n <= 1 {
		return nil
	}
	k := largestPowerOfTwoBelow(n)
	if m < k {
		return append(auditPath(m, leaves[:k]), subtreeHash(leaves[k:]))
	}
	return append(auditPath(m-k, leaves[k:]), subtreeHash(leaves[:k]))
}

// subtreeHash is RFC 6962's MTH over already hashed leaves.
func subtreeHash(leaves [][]byte) []byte {
	switch len(leaves) {
	case 0:
		return rfc6962.DefaultHasher.EmptyRoot()
	case 1:
		return leaves[0]
	}
	k := largestPowerOfTwoBelow(uint64(len(leaves)))
	return rfc6962.DefaultHasher.HashChildren(subtreeHash(leaves[:k]), subtreeHash(leaves[k:]))
}

func largestPowerOfTwoBelow(n uint64) uint64 {
	k := uint64(1)
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// Verify checks the proof against root, the Root of a checkpoint of Size
// records whose signature was checked.
func (p *InclusionProof) Verify(root string) error {
	if p.Root != root {
		return fmt.Errorf("the proof is for root %s, not %s", p.Root, root)
	}
	leaf, err := parseHash(p.Leaf)
	if err != nil {
		return err
	}
	rootRaw, err := parseHash(root)
	if err != nil {
		return err
	}
	path := make([][]byte, len(p.Path))
	for i, h := range p.Path {
		if path[i], err = parseHash(h); err != nil {
			return err
		}
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, p.Size, rfc6962.DefaultHasher.HashLeaf(leaf), path, rootRaw); err != nil {
		return errors.Join(fmt.Errorf("record %d is not proven in the tree of %d records", p.Index, p.Size), err)
	}
	return nil
}

func hashLeaf(recordHash []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(recordHash) }
