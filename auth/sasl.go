package auth

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/floodgate/floodgate/limits"
)

// Session is the server side of one SASL exchange.
type Session interface {
	// Step takes the client's next message and returns the server's
	// answer; done is true when the client is authenticated. An error
	// ends the exchange (ErrBadCredentials for wrong credentials).
	Step(in []byte) (out []byte, done bool, err error)
	// Principal is the authenticated user's name (valid once done).
	Principal() string
}

// Authenticator starts SASL exchanges for the enabled mechanisms.
type Authenticator struct {
	users *Users
	mechs []string
	// failures counts failed authentications per client IP: over
	// FailuresBurst (refilled at FailuresPerSecond), an address's next
	// attempts are refused without being checked, so PLAIN's PBKDF2
	// derivation (about 2 ms of CPU) cannot be had at a client's will.
	failures *limits.Buckets
}

// Failed-authentication budget of one client IP (SASL and HTTP Basic).
const (
	FailuresPerSecond = 1
	FailuresBurst     = 10
)

// Blocked reports whether ip failed too often lately to be checked now.
func (a *Authenticator) Blocked(ip string, now time.Time) bool {
	return a.failures.TakeN([]byte(ip), 0, now) > 0
}

// Failed counts a failed authentication of ip.
func (a *Authenticator) Failed(ip string, now time.Time) { a.failures.Take([]byte(ip), now) }

// ParseMechanisms reads a comma-separated mechanism list ("" = none).
func ParseMechanisms(list string) ([]string, error) {
	var out []string
	for m := range strings.SplitSeq(list, ",") {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" {
			continue
		}
		if m != Plain && m != ScramSHA256 && m != ScramSHA512 {
			return nil, fmt.Errorf("SASL mechanism %q: want %s, %s or %s", m, Plain, ScramSHA256, ScramSHA512)
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}

// NewAuthenticator serves mechs (names as ParseMechanisms returns them)
// against users.
func NewAuthenticator(users *Users, mechs []string) *Authenticator {
	return &Authenticator{users: users, mechs: slices.Clone(mechs), failures: limits.NewBuckets(FailuresPerSecond, FailuresBurst)}
}

// Mechanisms returns the enabled mechanisms.
func (a *Authenticator) Mechanisms() []string { return a.mechs }

// Users returns the users the authenticator checks.
func (a *Authenticator) Users() *Users { return a.users }

// Start begins an exchange with mech; false when it is not enabled.
func (a *Authenticator) Start(mech string) (Session, bool) {
	if !slices.Contains(a.mechs, mech) {
		return nil, false
	}
	if mech == Plain {
		return &plainServer{users: a.users}, true
	}
	h, _ := scramHash(mech)
	return &scramServer{mech: mech, h: h, users: a.users}, true
}

// plainServer checks one PLAIN message (RFC 4616):
// [authzid] NUL authcid NUL passwd.
type plainServer struct {
	users *Users
	user  string
	done  bool
}

// maxPlainMessage bounds a PLAIN message (three fields of 255 bytes in
// RFC 4616, with room for long passwords).
const maxPlainMessage = 2048

func (p *plainServer) Step(in []byte) ([]byte, bool, error) {
	if p.done {
		return nil, false, errors.New("plain: exchange already finished")
	}
	p.done = true
	if len(in) > maxPlainMessage {
		return nil, false, fmt.Errorf("plain message of %d bytes (at most %d)", len(in), maxPlainMessage)
	}
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 {
		return nil, false, errors.New("plain: want authzid NUL authcid NUL password")
	}
	authzid, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if user == "" {
		return nil, false, errors.New("plain: empty user name")
	}
	if authzid != "" && authzid != user {
		return nil, false, errors.New("plain: authorization id differs from the user name")
	}
	if !p.users.CheckPassword(user, pass) {
		return nil, false, ErrBadCredentials
	}
	p.user = user
	return nil, true, nil
}

func (p *plainServer) Principal() string { return p.user }
