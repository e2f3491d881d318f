package acl

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Anonymous is the principal of a connection that did not authenticate.
const Anonymous = "User:ANONYMOUS"

// Principal returns the principal of a user name ("" = anonymous).
func Principal(user string) string {
	if user == "" {
		return Anonymous
	}
	return "User:" + user
}

// Authorizer decides requests from the store's bindings.
type Authorizer struct {
	store        *Store
	superUsers   []string // principals
	allowIfNoACL bool
}

// NewAuthorizer decides from store; superUsers are user names.
func NewAuthorizer(store *Store, superUsers []string, allowEveryoneIfNoACLFound bool) *Authorizer {
	a := &Authorizer{store: store, allowIfNoACL: allowEveryoneIfNoACLFound}
	for _, u := range superUsers {
		a.superUsers = append(a.superUsers, Principal(u))
	}
	return a
}

// Store returns the bindings the authorizer decides from.
func (a *Authorizer) Store() *Store { return a.store }

// IsSuper reports whether principal bypasses ACLs.
func (a *Authorizer) IsSuper(principal string) bool { return slices.Contains(a.superUsers, principal) }

// implies reports whether a binding's operation grants op.
func implies(granted, op kmsg.ACLOperation) bool {
	if granted == op || granted == kmsg.ACLOperationAll {
		return true
	}
	switch op {
	case kmsg.ACLOperationDescribe:
		switch granted {
		case kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter:
			return true
		}
	case kmsg.ACLOperationDescribeConfigs:
		return granted == kmsg.ACLOperationAlterConfigs
	}
	return false
}

// Authorize reports whether principal, from host, may do op on the
// resource (rt, name).
func (a *Authorizer) Authorize(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	if a.IsSuper(principal) {
		return true
	}
	any, allow, deny := false, false, false
	a.store.each(func(b *Binding) {
		if b.ResourceType != rt || !patternApplies(b, name) {
			return
		}
		any = true
		if (b.Principal != principal && b.Principal != "User:*") || (b.Host != host && b.Host != "*") {
			return
		}
		if b.Permission == kmsg.ACLPermissionTypeDeny && (b.Operation == op || b.Operation == kmsg.ACLOperationAll) {
			deny = true
		}
		if b.Permission == kmsg.ACLPermissionTypeAllow && implies(b.Operation, op) {
			allow = true
		}
	})
	switch {
	case deny:
		return false
	case allow:
		return true
	}
	return !any && a.allowIfNoACL
}

// AuthorizeAnyOfType reports whether principal may do op on at least one
// resource of type rt: an ALLOW binding for it that no DENY of the same
// pattern cancels (Kafka's authorizeByResourceType, used for KIP-679's
// idempotent producers with WRITE on some topic).
func (a *Authorizer) AuthorizeAnyOfType(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType) bool {
	if a.IsSuper(principal) {
		return true
	}
	var allows, denies []Binding
	a.store.each(func(b *Binding) {
		if b.ResourceType != rt || (b.Principal != principal && b.Principal != "User:*") || (b.Host != host && b.Host != "*") {
			return
		}
		if b.Permission == kmsg.ACLPermissionTypeDeny && (b.Operation == op || b.Operation == kmsg.ACLOperationAll) {
			denies = append(denies, *b)
		} else if b.Permission == kmsg.ACLPermissionTypeAllow && implies(b.Operation, op) {
			allows = append(allows, *b)
		}
	})
	for _, d := range denies {
		if d.PatternType == kmsg.ACLResourcePatternTypeLiteral && d.ResourceName == "*" {
			return false // denied on every resource of the type
		}
	}
	for _, al := range allows {
		cancelled := false
		for _, d := range denies {
			if d.PatternType == kmsg.ACLResourcePatternTypePrefixed && len(al.ResourceName) >= len(d.ResourceName) &&
				al.ResourceName[:len(d.ResourceName)] == d.ResourceName {
				cancelled = true
			}
			if d.PatternType == al.PatternType && d.ResourceName == al.ResourceName {
				cancelled = true
			}
		}
		if !cancelled {
			return true
		}
	}
	return false
}
