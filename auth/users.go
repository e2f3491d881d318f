package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/floodgate/floodgate/internal/atomicfile"
)

// UsersFile is the users file's name in the data dir.
const UsersFile = "users.json"

// MaxUsers bounds the users file: it is read whole into memory.
const MaxUsers = 100000

// maxUsersFileBytes bounds what is read of the users file.
const maxUsersFileBytes = 64 << 20

// ErrNoSuchUser is returned when deleting a user that does not exist.
var ErrNoSuchUser = errors.New("no such user")

// usersDoc is the users file's content.
type usersDoc struct {
	Version int                              `json:"version"`
	Users   map[string]map[string]Credential `json:"users"` // name -> mechanism -> credential
}

// Users is the set of users, read from and written to one file. It is
// safe for concurrent use.
type Users struct {
	path   string
	secret [32]byte // keys the decoy salts of unknown users

	mu      sync.RWMutex
	users   map[string]map[string]Credential
	mtime   time.Time
	size    int64
	checked time.Time // last look at the file's mtime and size
	// onReload, when set, is told the error of a reload that failed (the
	// previous users stay in force).
	onReload func(error)
}

// OpenUsers reads the users file in dir (a missing file is no users).
func OpenUsers(dir string) (*Users, error) {
	u := &Users{path: filepath.Join(dir, UsersFile), users: map[string]map[string]Credential{}}
	if _, err := rand.Read(u.secret[:]); err != nil {
		return nil, fmt.Errorf("users secret: %w", err)
	}
	if err := u.reload(); err != nil {
		return nil, err
	}
	return u, nil
}

// OnReloadError sets who is told when a changed users file cannot be read.
func (u *Users) OnReloadError(f func(error)) {
	u.mu.Lock()
	u.onReload = f
	u.mu.Unlock()
}

// reload reads the file if it changed since it was last read.
func (u *Users) reload() error {
	st, err := os.Stat(u.path)
	if errors.Is(err, os.ErrNotExist) {
		u.mu.Lock()
		u.users, u.mtime, u.size = map[string]map[string]Credential{}, time.Time{}, 0
		u.mu.Unlock()
		return nil
	}
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	u.mu.RLock()
	same := st.ModTime().Equal(u.mtime) && st.Size() == u.size
	u.mu.RUnlock()
	if same {
		return nil
	}
	doc, err := readUsers(u.path)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.users, u.mtime, u.size = doc.Users, st.ModTime(), st.Size()
	u.mu.Unlock()
	return nil
}

// readUsers reads and checks a users file.
func readUsers(path string) (usersDoc, error) {
	f, err := os.Open(path)
	if err != nil {
		return usersDoc{}, fmt.Errorf("users file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return usersDoc{}, fmt.Errorf("users file: %w", err)
	}
	if st.Size() > maxUsersFileBytes {
		return usersDoc{}, fmt.Errorf("users file %s: %d bytes, more than %d", path, st.Size(), maxUsersFileBytes)
	}
	var doc usersDoc
	if err := json.NewDecoder(f).Decode(&doc); err != nil {
		return usersDoc{}, fmt.Errorf("users file %s: %w", path, err)
	}
	if doc.Users == nil {
		doc.Users = map[string]map[string]Credential{}
	}
	if len(doc.Users) > MaxUsers {
		return usersDoc{}, fmt.Errorf("users file %s: %d users, more than %d", path, len(doc.Users), MaxUsers)
	}
	for name, creds := range doc.Users {
		for mech, c := range creds {
			h, ok := scramHash(mech)
			if !ok || len(c.StoredKey) != h().Size() || len(c.ServerKey) != h().Size() ||
				c.Iterations < MinIterations || c.Iterations > MaxIterations || len(c.Salt) == 0 {
				return usersDoc{}, fmt.Errorf("users file %s: user %q: bad %s credential", path, name, mech)
			}
		}
	}
	return doc, nil
}

// refresh re-reads the file when it changed, looking at most once a second.
func (u *Users) refresh() {
	now := time.Now()
	u.mu.Lock()
	due := now.Sub(u.checked) >= time.Second
	if due {
		u.checked = now
	}
	report := u.onReload
	u.mu.Unlock()
	if !due {
		return
	}
	if err := u.reload(); err != nil && report != nil {
		report(err)
	}
}

// credential returns the user's credential for mech.
func (u *Users) credential(name, mech string) (Credential, bool) {
	u.refresh()
	u.mu.RLock()
	defer u.mu.RUnlock()
	c, ok := u.users[name][mech]
	return c, ok
}

// decoy returns a credential for an unknown user that stays the same for
// that name (its salt is keyed by a secret of this process), so SCRAM's
// first answer does not tell unknown users from known ones.
func (u *Users) decoy(name, mech string) Credential {
	m := hmac.New(sha256.New, u.secret[:])
	m.Write([]byte(mech + "\x00" + name))
	salt := m.Sum(nil)
	h, _ := scramHash(mech)
	return Credential{Salt: salt, Iterations: DefaultIterations, StoredKey: make([]byte, h().Size()), ServerKey: make([]byte, h().Size())}
}

// CheckPassword checks a user's password against any of its stored
// credentials (PLAIN and HTTP Basic). An unknown user costs the same
// derivation as a known one.
func (u *Users) CheckPassword(name, password string) bool {
	for _, mech := range ScramMechanisms {
		if c, ok := u.credential(name, mech); ok {
			return c.checkPassword(mech, password)
		}
	}
	d := u.decoy(name, ScramSHA256)
	d.checkPassword(ScramSHA256, password)
	return false
}

// passwordStamp identifies the stored credential CheckPassword checks a
// user's password against (its salt and stored key, which change with
// the password), or "" for an unknown user: a remembered check is valid
// only while the stamp stays the same.
func (u *Users) passwordStamp(name string) string {
	for _, mech := range ScramMechanisms {
		if c, ok := u.credential(name, mech); ok {
			return mech + "\x00" + string(c.Salt) + "\x00" + string(c.StoredKey)
		}
	}
	return ""
}

// UserInfo describes one user's credentials (no secrets).
type UserInfo struct {
	Name       string
	Mechanisms map[string]int // mechanism -> iterations
}

// List returns the users, sorted by name.
func (u *Users) List() []UserInfo {
	u.refresh()
	u.mu.RLock()
	defer u.mu.RUnlock()
	out := make([]UserInfo, 0, len(u.users))
	for name, creds := range u.users {
		info := UserInfo{Name: name, Mechanisms: map[string]int{}}
		for mech, c := range creds {
			info.Mechanisms[mech] = c.Iterations
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b UserInfo) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// Lookup returns one user's mechanisms and iteration counts.
func (u *Users) Lookup(name string) (UserInfo, bool) {
	u.refresh()
	u.mu.RLock()
	defer u.mu.RUnlock()
	creds, ok := u.users[name]
	if !ok {
		return UserInfo{}, false
	}
	info := UserInfo{Name: name, Mechanisms: map[string]int{}}
	for mech, c := range creds {
		info.Mechanisms[mech] = c.Iterations
	}
	return info, true
}

// Set stores cred as name's credential for mech and writes the file.
func (u *Users) Set(name, mech string, cred Credential) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if _, ok := scramHash(mech); !ok {
		return fmt.Errorf("mechanism %q: not a SCRAM mechanism", mech)
	}
	return u.update(func(users map[string]map[string]Credential) error {
		if users[name] == nil {
			if len(users) >= MaxUsers {
				return fmt.Errorf("user %q: already %d users (the most)", name, MaxUsers)
			}
			users[name] = map[string]Credential{}
		}
		users[name][mech] = cred
		return nil
	})
}

// Delete removes name's credential for mech ("" for all of them) and
// writes the file.
func (u *Users) Delete(name, mech string) error {
	return u.update(func(users map[string]map[string]Credential) error {
		creds, ok := users[name]
		if !ok {
			return fmt.Errorf("user %q: %w", name, ErrNoSuchUser)
		}
		if mech == "" {
			delete(users, name)
			return nil
		}
		if _, ok := creds[mech]; !ok {
			return fmt.Errorf("user %q has no %s credential: %w", name, mech, ErrNoSuchUser)
		}
		delete(creds, mech)
		if len(creds) == 0 {
			delete(users, name)
		}
		return nil
	})
}

// update re-reads the file, applies change to a copy and writes it
// atomically; the users in memory change only when the write succeeded.
func (u *Users) update(change func(map[string]map[string]Credential) error) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	users := map[string]map[string]Credential{}
	if _, err := os.Stat(u.path); err == nil {
		doc, err := readUsers(u.path)
		if err != nil {
			return err
		}
		users = doc.Users
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("users file: %w", err)
	}
	if err := change(users); err != nil {
		return err
	}
	data, err := json.MarshalIndent(usersDoc{Version: 1, Users: users}, "", "  ")
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	if err := WriteFileAtomic(u.path, data); err != nil {
		return err
	}
	st, err := os.Stat(u.path)
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	u.users, u.mtime, u.size = users, st.ModTime(), st.Size()
	return nil
}

// ValidName checks a user name: 1 to 255 bytes of printable characters,
// no control characters (it ends up in logs and principals).
func ValidName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("user name %q: want 1 to 255 bytes", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("user name %q: control characters are not allowed", name)
		}
	}
	return nil
}

// WriteFileAtomic writes data to path with mode 0600 (atomicfile.Write,
// fsynced), creating its directory (0700) when missing, so a reader sees
// the old file or the new one, never a part.
func WriteFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.Write(path, data, true)
}
