package acl

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestAuthorizerDecisions(t *testing.T) {
	const host = "10.0.0.1"
	allow, deny := kmsg.ACLPermissionTypeAllow, kmsg.ACLPermissionTypeDeny
	lit, pre := kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed
	b := func(p kmsg.ACLPermissionType, who string, op kmsg.ACLOperation, pt kmsg.ACLResourcePatternType, name string) Binding {
		return Binding{ResourceType: rtTopic, ResourceName: name, PatternType: pt, Principal: who, Host: "*", Operation: op, Permission: p}
	}
	cases := []struct {
		name     string
		acls     []Binding
		everyone bool
		who      string
		op       kmsg.ACLOperation
		topic    string
		want     bool
	}{
		{"no ACL at all denies", nil, false, "User:a", opRead, "t", false},
		{"no ACL at all with allow-everyone allows", nil, true, "User:a", opRead, "t", true},
		{"an ACL on the topic for someone else denies even with allow-everyone",
			[]Binding{b(allow, "User:b", opRead, lit, "t")}, true, "User:a", opRead, "t", false},
		{"literal allow", []Binding{b(allow, "User:a", opRead, lit, "t")}, false, "User:a", opRead, "t", true},
		{"literal allow is for that name only", []Binding{b(allow, "User:a", opRead, lit, "t")}, false, "User:a", opRead, "t2", false},
		{"literal * covers every topic", []Binding{b(allow, "User:a", opRead, lit, "*")}, false, "User:a", opRead, "x", true},
		{"prefixed allow", []Binding{b(allow, "User:a", opWrite, pre, "orders-")}, false, "User:a", opWrite, "orders-eu", true},
		{"prefixed is a prefix, not a substring", []Binding{b(allow, "User:a", opWrite, pre, "orders-")}, false, "User:a", opWrite, "old-orders-eu", false},
		{"User:* matches everyone", []Binding{b(allow, "User:*", opRead, lit, "t")}, false, "User:z", opRead, "t", true},
		{"deny wins over allow", []Binding{b(allow, "User:a", opRead, pre, ""+"t"), b(deny, "User:a", opRead, lit, "t-secret")}, false, "User:a", opRead, "t-secret", false},
		{"deny ALL wins over allow READ", []Binding{b(allow, "User:a", opRead, lit, "t"), b(deny, "User:*", kmsg.ACLOperationAll, lit, "t")}, false, "User:a", opRead, "t", false},
		{"ALL allows any operation", []Binding{b(allow, "User:a", kmsg.ACLOperationAll, lit, "t")}, false, "User:a", opDelete, "t", true},
		{"WRITE implies DESCRIBE", []Binding{b(allow, "User:a", opWrite, lit, "t")}, false, "User:a", opDescribe, "t", true},
		{"READ implies DESCRIBE", []Binding{b(allow, "User:a", opRead, lit, "t")}, false, "User:a", opDescribe, "t", true},
		{"DESCRIBE does not imply READ", []Binding{b(allow, "User:a", opDescribe, lit, "t")}, false, "User:a", opRead, "t", false},
		{"ALTER_CONFIGS implies DESCRIBE_CONFIGS", []Binding{b(allow, "User:a", opAlterConfigs, lit, "t")}, false, "User:a", opDescribeConfigs, "t", true},
		{"WRITE does not imply READ", []Binding{b(allow, "User:a", opWrite, lit, "t")}, false, "User:a", opRead, "t", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := NewAuthorizer(&Store{bindings: c.acls}, []string{"root"}, c.everyone)
			if got := a.Authorize(c.who, host, c.op, rtTopic, c.topic); got != c.want {
				t.Fatalf("Authorize(%s, %v, %s) = %v, want %v", c.who, c.op, c.topic, got, c.want)
			}
			if !a.Authorize("User:root", host, c.op, rtTopic, c.topic) {
				t.Fatal("a super user was denied")
			}
		})
	}
}

func TestHostRestrictedBinding(t *testing.T) {
	a := NewAuthorizer(&Store{bindings: []Binding{{ResourceType: rtTopic, ResourceName: "t", PatternType: kmsg.ACLResourcePatternTypeLiteral,
		Principal: "User:a", Host: "10.0.0.1", Operation: opRead, Permission: kmsg.ACLPermissionTypeAllow}}}, nil, false)
	if !a.Authorize("User:a", "10.0.0.1", opRead, rtTopic, "t") || a.Authorize("User:a", "10.0.0.2", opRead, rtTopic, "t") {
		t.Fatal("a binding for one host must allow that host only")
	}
}
