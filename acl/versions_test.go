package acl_test

import (
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/acl"
	"github.com/floodgate/floodgate/auth"
	"github.com/floodgate/floodgate/broker"
)

// TestGuardAdvertisesItsOwnAPIs: the guard offers the ACL APIs (v0-v3)
// always, the SCRAM user APIs (v0) only with a user store, and every other
// API as the broker serves it.
func TestGuardAdvertisesItsOwnAPIs(t *testing.T) {
	b := broker.New(broker.Config{NodeID: 1, Host: "127.0.0.1", Port: 9092, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(b.Close)
	users, err := auth.OpenUsers(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store, err := acl.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	authz := acl.NewAuthorizer(store, nil, false)
	withUsers := acl.NewGuard(acl.GuardConfig{Inner: b, Authorizer: authz, Users: users})
	withoutUsers := acl.NewGuard(acl.GuardConfig{Inner: b, Authorizer: authz})
	_, produceMax, _ := b.VersionRange(int16(kmsg.Produce))
	for _, tc := range []struct {
		key               kmsg.Key
		withUsers, noUser bool
		max               int16
	}{
		{kmsg.DescribeACLs, true, true, 3},
		{kmsg.CreateACLs, true, true, 3},
		{kmsg.DeleteACLs, true, true, 3},
		{kmsg.DescribeUserSCRAMCredentials, true, false, 0},
		{kmsg.AlterUserSCRAMCredentials, true, false, 0},
		{kmsg.Produce, true, true, produceMax},
	} {
		for _, g := range []struct {
			name  string
			guard *acl.Guard
			want  bool
		}{{"with users", withUsers, tc.withUsers}, {"without users", withoutUsers, tc.noUser}} {
			min, max, ok := g.guard.VersionRange(int16(tc.key))
			if ok != g.want || ok && (min != 0 || max != tc.max) {
				t.Errorf("%s %s: versions %d-%d offered %v, want 0-%d offered %v", tc.key.Name(), g.name, min, max, ok, tc.max, g.want)
			}
		}
	}
}
