package acl

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/auth"
)

// File is the ACL file's name in the data dir.
const File = "acls.json"

// MaxBindings bounds the ACLs (each is checked on the request path).
const MaxBindings = 100000

// Binding is one ACL.
type Binding struct {
	ResourceType kmsg.ACLResourceType        `json:"resource_type"`
	ResourceName string                      `json:"resource_name"`
	PatternType  kmsg.ACLResourcePatternType `json:"pattern_type"`
	Principal    string                      `json:"principal"`
	Host         string                      `json:"host"`
	Operation    kmsg.ACLOperation           `json:"operation"`
	Permission   kmsg.ACLPermissionType      `json:"permission"`
}

// Filter selects bindings (DescribeAcls, DeleteAcls): zero or ANY fields
// match everything, MATCH pattern type matches literal, wildcard and
// prefixed patterns that apply to the name.
type Filter struct {
	ResourceType kmsg.ACLResourceType
	ResourceName *string
	PatternType  kmsg.ACLResourcePatternType
	Principal    *string
	Host         *string
	Operation    kmsg.ACLOperation
	Permission   kmsg.ACLPermissionType
}

// Matches reports whether f selects b.
func (f *Filter) Matches(b *Binding) bool {
	if f.ResourceType != kmsg.ACLResourceTypeAny && f.ResourceType != b.ResourceType {
		return false
	}
	switch f.PatternType {
	case kmsg.ACLResourcePatternTypeAny:
		if f.ResourceName != nil && *f.ResourceName != b.ResourceName {
			return false
		}
	case kmsg.ACLResourcePatternTypeMatch:
		if f.ResourceName != nil && !patternApplies(b, *f.ResourceName) {
			return false
		}
	default:
		if f.PatternType != b.PatternType || (f.ResourceName != nil && *f.ResourceName != b.ResourceName) {
			return false
		}
	}
	if f.Principal != nil && *f.Principal != b.Principal {
		return false
	}
	if f.Host != nil && *f.Host != b.Host {
		return false
	}
	if f.Operation != kmsg.ACLOperationAny && f.Operation != b.Operation {
		return false
	}
	if f.Permission != kmsg.ACLPermissionTypeAny && f.Permission != b.Permission {
		return false
	}
	return true
}

// patternApplies reports whether b's pattern covers the resource name.
func patternApplies(b *Binding, name string) bool {
	switch b.PatternType {
	case kmsg.ACLResourcePatternTypeLiteral:
		return b.ResourceName == name || b.ResourceName == "*"
	case kmsg.ACLResourcePatternTypePrefixed:
		return len(name) >= len(b.ResourceName) && name[:len(b.ResourceName)] == b.ResourceName
	}
	return false
}

// Validate checks a binding to be created.
func (b *Binding) Validate() error {
	switch b.ResourceType {
	case kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup, kmsg.ACLResourceTypeTransactionalId:
	case kmsg.ACLResourceTypeCluster:
		if b.ResourceName != "kafka-cluster" {
			return errors.New("a cluster ACL's resource name must be kafka-cluster")
		}
	default:
		return fmt.Errorf("resource type %v is not served", b.ResourceType)
	}
	if b.PatternType != kmsg.ACLResourcePatternTypeLiteral && b.PatternType != kmsg.ACLResourcePatternTypePrefixed {
		return fmt.Errorf("pattern type %v: want LITERAL or PREFIXED", b.PatternType)
	}
	if b.ResourceName == "" {
		return errors.New("empty resource name")
	}
	if len(b.Principal) < 6 || b.Principal[:5] != "User:" {
		return fmt.Errorf("principal %q: want User:NAME", b.Principal)
	}
	if b.Host == "" {
		return errors.New("empty host (use * for any)")
	}
	switch b.Operation {
	case kmsg.ACLOperationAny, kmsg.ACLOperationUnknown:
		return errors.New("operation ANY is not a binding's operation")
	}
	if b.Operation < kmsg.ACLOperationAll || b.Operation > kmsg.ACLOperationIdempotentWrite {
		return fmt.Errorf("operation %v is not served", b.Operation)
	}
	if b.Permission != kmsg.ACLPermissionTypeAllow && b.Permission != kmsg.ACLPermissionTypeDeny {
		return fmt.Errorf("permission %v: want ALLOW or DENY", b.Permission)
	}
	return nil
}

// Store holds the bindings and their file. It is safe for concurrent use.
type Store struct {
	path     string
	mu       sync.RWMutex
	bindings []Binding
}

// OpenStore reads the ACL file in dir (a missing file is no ACLs).
func OpenStore(dir string) (*Store, error) {
	s := &Store{path: filepath.Join(dir, File)}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("acl file: %w", err)
	}
	var doc struct {
		ACLs []Binding `json:"acls"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("acl file %s: %w", s.path, err)
	}
	for i := range doc.ACLs {
		if err := doc.ACLs[i].Validate(); err != nil {
			return nil, fmt.Errorf("acl file %s: entry %d: %w", s.path, i, err)
		}
	}
	if len(doc.ACLs) > MaxBindings {
		return nil, fmt.Errorf("acl file %s: %d ACLs, more than %d", s.path, len(doc.ACLs), MaxBindings)
	}
	s.bindings = doc.ACLs
	return s, nil
}

// save writes bindings to the file; the caller holds mu.
func (s *Store) save(bindings []Binding) error {
	data, err := json.MarshalIndent(struct {
		Version int       `json:"version"`
		ACLs    []Binding `json:"acls"`
	}{1, bindings}, "", "  ")
	if err != nil {
		return fmt.Errorf("acl file: %w", err)
	}
	return auth.WriteFileAtomic(s.path, data)
}

// Add stores new bindings (one already there is not added twice) and
// writes the file; nothing changes when the write fails.
func (s *Store) Add(bs []Binding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.Clone(s.bindings)
	for _, b := range bs {
		if !slices.Contains(next, b) {
			next = append(next, b)
		}
	}
	if len(next) > MaxBindings {
		return fmt.Errorf("%d ACLs would be more than %d", len(next), MaxBindings)
	}
	if err := s.save(next); err != nil {
		return err
	}
	s.bindings = next
	return nil
}

// Delete removes the bindings each filter selects and writes the file; it
// returns what each filter removed.
func (s *Store) Delete(fs []Filter) ([][]Binding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]Binding, len(fs))
	next := make([]Binding, 0, len(s.bindings))
	for _, b := range s.bindings {
		hit := false
		for i := range fs {
			if fs[i].Matches(&b) {
				out[i] = append(out[i], b)
				hit = true
			}
		}
		if !hit {
			next = append(next, b)
		}
	}
	if len(next) == len(s.bindings) {
		return out, nil
	}
	if err := s.save(next); err != nil {
		return nil, err
	}
	s.bindings = next
	return out, nil
}

// List returns the bindings f selects.
func (s *Store) List(f Filter) []Binding {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Binding
	for i := range s.bindings {
		if f.Matches(&s.bindings[i]) {
			out = append(out, s.bindings[i])
		}
	}
	return out
}

// each calls fn for every binding under the read lock.
func (s *Store) each(fn func(*Binding)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := range s.bindings {
		fn(&s.bindings[i])
	}
}
