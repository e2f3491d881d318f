package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"github.com/floodgate/floodgate/limits"
)

// Basic checks HTTP Basic credentials against the users. A password check
// costs a PBKDF2 derivation (milliseconds of CPU), so:
//   - a header that passed is remembered (keyed by an HMAC of it, never
//     the password itself) for basicCacheTTL, in at most basicCacheSize
//     entries, so a REST client does not pay it on every request;
//   - failures are limited per client IP (a token bucket of
//     FailuresPerSecond, FailuresBurst): over it, a request is refused 429 without
//     a derivation, so guessing passwords over HTTP costs the server
//     nothing and gains the client nothing.
type Basic struct {
	users *Users
	key   [32]byte

	mu    sync.Mutex
	cache map[[32]byte]basicEntry

	failures *limits.Buckets
}

type basicEntry struct {
	user    string
	stamp   string // the user's credential the password was checked against
	expires time.Time
}

const (
	basicCacheTTL  = time.Minute
	basicCacheSize = 4096
)

// NewBasic checks against users.
func NewBasic(users *Users) *Basic {
	b := &Basic{users: users, cache: map[[32]byte]basicEntry{},
		failures: limits.NewBuckets(FailuresPerSecond, FailuresBurst)}
	_, _ = rand.Read(b.key[:])
	return b
}

// BasicResult is the outcome of a check.
type BasicResult uint8

// Outcomes of Basic.Check.
const (
	// BasicOK: the credentials are right.
	BasicOK BasicResult = iota
	// BasicMissing: no (or a malformed) Basic Authorization header.
	BasicMissing
	// BasicWrong: wrong user or password.
	BasicWrong
	// BasicTooManyFailures: the IP failed too often lately; not checked.
	BasicTooManyFailures
)

// Check reads an Authorization header value from ip and returns the user
// it authenticates.
func (b *Basic) Check(header, ip string) (string, BasicResult) {
	enc, ok := strings.CutPrefix(header, "Basic ")
	if !ok || len(enc) > 1024 {
		return "", BasicMissing
	}
	m := hmac.New(sha256.New, b.key[:])
	m.Write([]byte(header))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	now := time.Now()
	b.mu.Lock()
	e, hit := b.cache[k]
	b.mu.Unlock()
	if hit && now.Before(e.expires) {
		// Only while the user's password is the one checked: a changed
		// (or deleted) user is checked again.
		if st := b.users.passwordStamp(e.user); st != "" && st == e.stamp {
			return e.user, BasicOK
		}
	}
	if b.failures.TakeN([]byte(ip), 0, now) > 0 {
		return "", BasicTooManyFailures
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", BasicMissing
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" {
		return "", BasicMissing
	}
	stamp := b.users.passwordStamp(user) // before the check: a change in between is checked again next time
	if !b.users.CheckPassword(user, pass) {
		b.failures.Take([]byte(ip), now)
		return "", BasicWrong
	}
	b.mu.Lock()
	if len(b.cache) >= basicCacheSize {
		for old := range b.cache { // drop some entry: the map's order is random
			delete(b.cache, old)
			break
		}
	}
	b.cache[k] = basicEntry{user: user, stamp: stamp, expires: now.Add(basicCacheTTL)}
	b.mu.Unlock()
	return user, BasicOK
}
