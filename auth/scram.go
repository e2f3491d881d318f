package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// Mechanism names, as SaslHandshake and the users file spell them.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// Iteration counts: Kafka's minimum is 4096 (and so is RFC 7677's
// recommendation for SHA-256); more costs every login, and a PLAIN or
// Basic check, the same.
const (
	DefaultIterations = 4096
	MinIterations     = 4096
	MaxIterations     = 16384 // Kafka's upper bound
)

// ErrBadCredentials is the answer to a wrong user name or password: the
// two are not told apart.
var ErrBadCredentials = errors.New("authentication failed: invalid credentials")

// Credential is what is stored of one user for one SCRAM mechanism.
type Credential struct {
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// scramHash returns the hash of a SCRAM mechanism.
func scramHash(mech string) (func() hash.Hash, bool) {
	switch mech {
	case ScramSHA256:
		return sha256.New, true
	case ScramSHA512:
		return sha512.New, true
	}
	return nil, false
}

// ScramMechanisms lists the SCRAM mechanisms, in preference order.
var ScramMechanisms = []string{ScramSHA256, ScramSHA512}

// NewCredential derives the stored credential of password for mech with
// a fresh random salt.
func NewCredential(mech, password string, iterations int) (Credential, error) {
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return Credential{}, fmt.Errorf("salt: %w", err)
	}
	return CredentialFromSalted(mech, password, salt, iterations)
}

// CredentialFromSalted derives the stored credential of password for mech
// with the given salt and iteration count.
func CredentialFromSalted(mech, password string, salt []byte, iterations int) (Credential, error) {
	h, ok := scramHash(mech)
	if !ok {
		return Credential{}, fmt.Errorf("mechanism %q: not a SCRAM mechanism (want %s)", mech, strings.Join(ScramMechanisms, " or "))
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return Credential{}, fmt.Errorf("iterations %d: want %d..%d", iterations, MinIterations, MaxIterations)
	}
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return Credential{}, fmt.Errorf("pbkdf2: %w", err)
	}
	return CredentialFromSaltedPassword(h, salted, salt, iterations), nil
}

// CredentialFromSaltedPassword computes StoredKey and ServerKey from a
// SaltedPassword (what AlterUserScramCredentials carries).
func CredentialFromSaltedPassword(h func() hash.Hash, salted, salt []byte, iterations int) Credential {
	clientKey := hmacOf(h, salted, "Client Key")
	stored := h()
	stored.Write(clientKey)
	return Credential{
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  stored.Sum(nil),
		ServerKey:  hmacOf(h, salted, "Server Key"),
	}
}

// checkPassword reports whether password derives the credential's
// StoredKey (PLAIN and HTTP Basic against SCRAM credentials).
func (c *Credential) checkPassword(mech, password string) bool {
	d, err := CredentialFromSalted(mech, password, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(d.StoredKey, c.StoredKey) == 1
}

func hmacOf(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// scramServer is the server side of one SCRAM exchange (RFC 5802 section
// 5): client-first, server-first, client-final, server-final. Channel
// binding is not offered (the listener is not TLS), so a client asking for
// it ("p=") is refused; "y" (client supports it, thinks the server does
// not) and "n" are accepted.
type scramServer struct {
	mech  string
	h     func() hash.Hash
	users *Users
	step  int
	// After client-first.
	user            string
	cred            Credential
	known           bool
	gs2, nonce      string
	clientFirstBare string
	serverFirst     string
}

// maxScramMessage bounds a SCRAM message; real ones are about 100 bytes.
const maxScramMessage = 4096

func (s *scramServer) Step(in []byte) ([]byte, bool, error) {
	if len(in) > maxScramMessage {
		return nil, false, fmt.Errorf("scram message of %d bytes (at most %d)", len(in), maxScramMessage)
	}
	switch s.step {
	case 0:
		s.step++
		out, err := s.clientFirst(string(in))
		return out, false, err
	case 1:
		s.step++
		out, err := s.clientFinal(string(in))
		return out, err == nil, err
	}
	return nil, false, errors.New("scram: exchange already finished")
}

func (s *scramServer) Principal() string { return s.user }

// clientFirst reads "gs2-header client-first-message-bare" and answers
// server-first-message.
func (s *scramServer) clientFirst(msg string) ([]byte, error) {
	// gs2-header: cbind-flag "," [authzid] ","
	cb, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return nil, errors.New("scram client-first: no gs2 header")
	}
	switch {
	case cb == "n" || cb == "y":
	case strings.HasPrefix(cb, "p="):
		return nil, errors.New("scram client-first: channel binding is not supported")
	default:
		return nil, fmt.Errorf("scram client-first: bad channel binding flag %q", cb)
	}
	authzid, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, errors.New("scram client-first: short gs2 header")
	}
	s.gs2 = cb + "," + authzid + ","
	s.clientFirstBare = bare
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || strings.HasPrefix(attrs[0], "m=") {
		return nil, errors.New("scram client-first: malformed or mandatory extension")
	}
	name, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return nil, errors.New("scram client-first: no user name")
	}
	user, err := saslName(name)
	if err != nil {
		return nil, err
	}
	if authzid != "" {
		az, err := saslName(strings.TrimPrefix(authzid, "a="))
		if err != nil || !strings.HasPrefix(authzid, "a=") || az != user {
			return nil, errors.New("scram client-first: authorization id differs from the user name")
		}
	}
	cnonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || cnonce == "" || !printable(cnonce) {
		return nil, errors.New("scram client-first: bad nonce")
	}
	s.user = user
	s.cred, s.known = s.users.credential(user, s.mech)
	if !s.known {
		// Go on with a made-up credential so that an unknown user fails
		// at the proof, like a wrong password (no user enumeration).
		s.cred = s.users.decoy(user, s.mech)
	}
	var nb [24]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	s.nonce = cnonce + base64.RawStdEncoding.EncodeToString(nb[:])
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(s.cred.Iterations)
	return []byte(s.serverFirst), nil
}

// clientFinal checks "c=... ,r=... ,p=proof" and answers server-final
// ("v=signature").
func (s *scramServer) clientFinal(msg string) ([]byte, error) {
	without, proofAttr, ok := strings.Cut(msg, ",p=")
	if !ok {
		return nil, errors.New("scram client-final: no proof")
	}
	attrs := strings.Split(without, ",")
	if len(attrs) < 2 {
		return nil, errors.New("scram client-final: malformed")
	}
	cbind, ok := strings.CutPrefix(attrs[0], "c=")
	if !ok || cbind != base64.StdEncoding.EncodeToString([]byte(s.gs2)) {
		return nil, errors.New("scram client-final: channel binding does not match the gs2 header")
	}
	// Kafka checks that the nonce ends with the server's (not equality):
	// librdkafka sends its client nonce before the whole server nonce,
	// which already starts with it. The server's part, fresh for this
	// exchange, is still required, and the proof covers what was sent.
	if nonce, ok := strings.CutPrefix(attrs[1], "r="); !ok || !strings.HasSuffix(nonce, s.nonce) {
		return nil, errors.New("scram client-final: nonce does not match")
	}
	proof, err := base64.StdEncoding.DecodeString(proofAttr)
	if err != nil || len(proof) != s.h().Size() {
		return nil, errors.New("scram client-final: bad proof encoding")
	}
	authMsg := s.clientFirstBare + "," + s.serverFirst + "," + without
	sig := hmacOf(s.h, s.cred.StoredKey, authMsg)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	stored := s.h()
	stored.Write(clientKey)
	if subtle.ConstantTimeCompare(stored.Sum(nil), s.cred.StoredKey) != 1 || !s.known {
		return nil, ErrBadCredentials
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(s.h, s.cred.ServerKey, authMsg))), nil
}

// saslName decodes a SCRAM saslname (",", "=" escaped as =2C and =3D).
func saslName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errors.New("scram: bad escape in user name")
		}
		i += 2
	}
	return b.String(), nil
}

// printable reports whether s is printable ASCII without a comma (a nonce).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return true
}
