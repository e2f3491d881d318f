package acl

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/auth"
)

// The ACL and user APIs are checked whatever --auth-required says: ALTER
// on the cluster to change ACLs or users, DESCRIBE to list them (super
// users have both). An anonymous client must never grant itself access.

// createACLs stores new bindings (CreateAcls).
func (g *Guard) createACLs(w *who, r *kmsg.CreateACLsRequest, resp *kmsg.CreateACLsResponse, respond func(kmsg.Response)) {
	allowed := w.mayCluster(opAlter)
	var add []Binding
	var idx []int
	for i, c := range r.Creations {
		res := kmsg.NewCreateACLsResponseResult()
		switch {
		case !allowed:
			res.ErrorCode = clusterDenied
		case i >= maxACLRequestFilter:
			res.ErrorCode = kerr.InvalidRequest.Code
			res.ErrorMessage = strPtr(fmt.Sprintf("at most %d creations per request", maxACLRequestFilter))
		default:
			b := Binding{ResourceType: c.ResourceType, ResourceName: c.ResourceName, PatternType: c.ResourcePatternType,
				Principal: c.Principal, Host: c.Host, Operation: c.Operation, Permission: c.PermissionType}
			if r.GetVersion() == 0 {
				b.PatternType = kmsg.ACLResourcePatternTypeLiteral
			}
			if err := b.Validate(); err != nil {
				res.ErrorCode = kerr.InvalidRequest.Code
				res.ErrorMessage = strPtr(err.Error())
			} else {
				add = append(add, b)
				idx = append(idx, i)
			}
		}
		resp.Results = append(resp.Results, res)
	}
	if !allowed {
		w.denied(r.Key(), clusterDenied)
	}
	if len(add) > 0 {
		if err := g.cfg.Authorizer.store.Add(add); err != nil {
			for _, i := range idx {
				resp.Results[i].ErrorCode = kerr.UnknownServerError.Code
				resp.Results[i].ErrorMessage = strPtr(err.Error())
			}
			g.log.Error("ACLs not stored", "principal", w.principal, "client_ip", w.host, "error", err.Error())
		} else {
			for _, b := range add {
				g.log.Info("audit: ACL created", "principal", w.principal, "client_ip", w.host, "acl", b.String())
			}
		}
	}
	respond(resp)
}

// String renders a binding for logs.
func (b Binding) String() string {
	return fmt.Sprintf("%s %s %s on %s:%s:%s from %s", b.Principal, b.Permission, b.Operation, b.ResourceType, b.PatternType, b.ResourceName, b.Host)
}

func strPtr(s string) *string { return &s }

// describeACLs lists bindings (DescribeAcls), grouped by resource pattern;
// serve has checked DESCRIBE on the cluster (ownAPI.describe).
func (g *Guard) describeACLs(w *who, r *kmsg.DescribeACLsRequest, resp *kmsg.DescribeACLsResponse, respond func(kmsg.Response)) {
	f := Filter{ResourceType: r.ResourceType, ResourceName: r.ResourceName, PatternType: r.ResourcePatternType,
		Principal: r.Principal, Host: r.Host, Operation: r.Operation, Permission: r.PermissionType}
	if r.GetVersion() == 0 {
		f.PatternType = kmsg.ACLResourcePatternTypeLiteral
	}
	type key struct {
		rt   kmsg.ACLResourceType
		name string
		pt   kmsg.ACLResourcePatternType
	}
	at := map[key]int{}
	for _, b := range g.cfg.Authorizer.store.List(f) {
		k := key{b.ResourceType, b.ResourceName, b.PatternType}
		i, ok := at[k]
		if !ok {
			res := kmsg.NewDescribeACLsResponseResource()
			res.ResourceType, res.ResourceName, res.ResourcePatternType = b.ResourceType, b.ResourceName, b.PatternType
			resp.Resources = append(resp.Resources, res)
			i = len(resp.Resources) - 1
			at[k] = i
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host, a.Operation, a.PermissionType = b.Principal, b.Host, b.Operation, b.Permission
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, a)
	}
	respond(resp)
}

// deleteACLs removes the bindings each filter selects (DeleteAcls).
func (g *Guard) deleteACLs(w *who, r *kmsg.DeleteACLsRequest, resp *kmsg.DeleteACLsResponse, respond func(kmsg.Response)) {
	allowed := w.mayCluster(opAlter) && len(r.Filters) <= maxACLRequestFilter
	fs := make([]Filter, len(r.Filters))
	for i, f := range r.Filters {
		fs[i] = Filter{ResourceType: f.ResourceType, ResourceName: f.ResourceName, PatternType: f.ResourcePatternType,
			Principal: f.Principal, Host: f.Host, Operation: f.Operation, Permission: f.PermissionType}
		if r.GetVersion() == 0 {
			fs[i].PatternType = kmsg.ACLResourcePatternTypeLiteral
		}
	}
	var removed [][]Binding
	var err error
	if allowed {
		removed, err = g.cfg.Authorizer.store.Delete(fs)
	} else {
		w.denied(r.Key(), clusterDenied)
	}
	for i := range r.Filters {
		res := kmsg.NewDeleteACLsResponseResult()
		switch {
		case !allowed:
			res.ErrorCode = clusterDenied
		case err != nil:
			res.ErrorCode = kerr.UnknownServerError.Code
			res.ErrorMessage = strPtr(err.Error())
		default:
			for _, b := range removed[i] {
				m := kmsg.NewDeleteACLsResponseResultMatchingACL()
				m.ResourceType, m.ResourceName, m.ResourcePatternType = b.ResourceType, b.ResourceName, b.PatternType
				m.Principal, m.Host, m.Operation, m.PermissionType = b.Principal, b.Host, b.Operation, b.Permission
				res.MatchingACLs = append(res.MatchingACLs, m)
				g.log.Info("audit: ACL deleted", "principal", w.principal, "client_ip", w.host, "acl", b.String())
			}
		}
		resp.Results = append(resp.Results, res)
	}
	respond(resp)
}

// scramMechanism maps Kafka's SCRAM mechanism numbers.
func scramMechanism(m int8) (string, func() hash.Hash, bool) {
	switch m {
	case 1:
		return auth.ScramSHA256, sha256.New, true
	case 2:
		return auth.ScramSHA512, sha512.New, true
	}
	return "", nil, false
}

// describeSCRAM lists users' SCRAM mechanisms and iterations
// (DescribeUserScramCredentials); serve has checked DESCRIBE on the
// cluster (ownAPI.describe).
func (g *Guard) describeSCRAM(w *who, r *kmsg.DescribeUserSCRAMCredentialsRequest, resp *kmsg.DescribeUserSCRAMCredentialsResponse, respond func(kmsg.Response)) {
	var infos []auth.UserInfo
	if r.Users == nil {
		infos = g.cfg.Users.List()
	}
	result := func(info auth.UserInfo) kmsg.DescribeUserSCRAMCredentialsResponseResult {
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = info.Name
		for m, mech := range map[int8]string{1: auth.ScramSHA256, 2: auth.ScramSHA512} {
			if it, ok := info.Mechanisms[mech]; ok {
				ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
				ci.Mechanism, ci.Iterations = m, int32(it)
				res.CredentialInfos = append(res.CredentialInfos, ci)
			}
		}
		return res
	}
	for _, info := range infos {
		resp.Results = append(resp.Results, result(info))
	}
	for _, u := range r.Users {
		info, ok := g.cfg.Users.Lookup(u.Name)
		if !ok {
			res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
			res.User, res.ErrorCode = u.Name, kerr.ResourceNotFound.Code
			res.ErrorMessage = strPtr("no such user")
			resp.Results = append(resp.Results, res)
			continue
		}
		resp.Results = append(resp.Results, result(info))
	}
	respond(resp)
}

// alterSCRAM adds, changes and deletes users' SCRAM credentials
// (AlterUserScramCredentials); the client sends the salted password,
// never the password.
func (g *Guard) alterSCRAM(w *who, r *kmsg.AlterUserSCRAMCredentialsRequest, resp *kmsg.AlterUserSCRAMCredentialsResponse, respond func(kmsg.Response)) {
	allowed := w.mayCluster(opAlter)
	if !allowed {
		w.denied(r.Key(), clusterDenied)
	}
	results := map[string]int16{}
	messages := map[string]string{}
	var order []string
	set := func(user string, code int16, msg string) {
		if _, ok := results[user]; !ok {
			order = append(order, user)
			results[user] = code
			messages[user] = msg
			return
		}
		if results[user] == 0 && code != 0 {
			results[user], messages[user] = code, msg
		}
	}
	// attempt is the mechanism of a user's deletion or upsertion when it
	// may be attempted; else it sets the user's answer.
	attempt := func(user string, m int8) (string, func() hash.Hash, bool) {
		mech, h, ok := scramMechanism(m)
		switch {
		case !allowed:
			set(user, clusterDenied, "")
		case !ok:
			set(user, kerr.UnsupportedSaslMechanism.Code, "unknown SCRAM mechanism")
		default:
			return mech, h, true
		}
		return "", nil, false
	}
	for _, d := range r.Deletions {
		mech, _, ok := attempt(d.Name, d.Mechanism)
		if !ok {
			continue
		}
		err := g.cfg.Users.Delete(d.Name, mech)
		switch {
		case errors.Is(err, auth.ErrNoSuchUser):
			set(d.Name, kerr.ResourceNotFound.Code, err.Error())
		case err != nil:
			set(d.Name, kerr.UnknownServerError.Code, err.Error())
		default:
			set(d.Name, 0, "")
			g.log.Info("audit: user credential deleted", "principal", w.principal, "client_ip", w.host, "user", d.Name, "mechanism", mech)
		}
	}
	for _, u := range r.Upsertions {
		mech, h, ok := attempt(u.Name, u.Mechanism)
		switch {
		case !ok:
		case u.Iterations < auth.MinIterations || u.Iterations > auth.MaxIterations || len(u.Salt) == 0 || len(u.SaltedPassword) != h().Size():
			set(u.Name, kerr.UnacceptableCredential.Code, fmt.Sprintf("iterations must be %d..%d, salt non-empty, salted password %d bytes",
				auth.MinIterations, auth.MaxIterations, h().Size()))
		default:
			cred := auth.CredentialFromSaltedPassword(h, u.SaltedPassword, u.Salt, int(u.Iterations))
			if err := g.cfg.Users.Set(u.Name, mech, cred); err != nil {
				set(u.Name, kerr.UnacceptableCredential.Code, err.Error())
				continue
			}
			set(u.Name, 0, "")
			g.log.Info("audit: user credential set", "principal", w.principal, "client_ip", w.host, "user", u.Name, "mechanism", mech)
		}
	}
	for _, user := range order {
		res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		res.User, res.ErrorCode = user, results[user]
		if m := messages[user]; m != "" {
			res.ErrorMessage = strPtr(m)
		}
		resp.Results = append(resp.Results, res)
	}
	respond(resp)
}

// audit logs, at INFO, requests that change topics, configs or groups,
// with the principal and client IP.
func (g *Guard) audit(w *who, req kmsg.Request, _ error) {
	var what []string
	switch r := req.(type) {
	case *kmsg.CreateTopicsRequest:
		for _, t := range r.Topics {
			what = append(what, t.Topic)
		}
	case *kmsg.DeleteTopicsRequest:
		what = append(what, r.TopicNames...)
		for _, t := range r.Topics {
			if t.Topic != nil {
				what = append(what, *t.Topic)
			} else {
				what = append(what, fmt.Sprintf("id:%x", t.TopicID))
			}
		}
	case *kmsg.CreatePartitionsRequest:
		for _, t := range r.Topics {
			what = append(what, t.Topic)
		}
	case *kmsg.DeleteRecordsRequest:
		for _, t := range r.Topics {
			what = append(what, t.Topic)
		}
	case *kmsg.AlterConfigsRequest:
		for _, res := range r.Resources {
			what = append(what, res.ResourceType.String()+":"+res.ResourceName)
		}
	case *kmsg.IncrementalAlterConfigsRequest:
		for _, res := range r.Resources {
			what = append(what, res.ResourceType.String()+":"+res.ResourceName)
		}
	case *kmsg.DeleteGroupsRequest:
		what = append(what, r.Groups...)
	default:
		return
	}
	if len(what) > 20 {
		what = append(what[:20], fmt.Sprintf("... %d more", len(what)-20))
	}
	g.log.Info("audit: "+kmsg.NameForKey(req.Key()), "principal", w.principal, "client_ip", w.host,
		"client_id", w.cl.ClientID, "resources", strings.Join(what, ","))
}
