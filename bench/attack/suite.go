package attack

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// SuiteConfig is a run of several attacks: `floodgate bench attack`.
type SuiteConfig struct {
	Config
	// Floodgate is the floodgate binary to attack.
	Floodgate string
	// Nginx also runs every HTTP attack against nginx.
	Nginx bool
	// Scale multiplies the attackers' connection counts.
	Scale float64
	// Only keeps the attacks whose name contains one of these (all when
	// empty); an entry that is an attack's whole name keeps that attack
	// alone (Select).
	Only []string
	// Attacks replaces the Catalogue when set.
	Attacks []Attack
	// Progress, when set, is told which attack starts.
	Progress func(attack, server string)
}

// Select returns the attacks of attacks whose name contains one of only
// (all of them when only is empty). An entry that is the whole name of an
// attack selects that attack alone: "http-abandoned-body" is not also
// http-abandoned-body-closed.
func Select(attacks []Attack, only []string) []Attack {
	if len(only) == 0 {
		return attacks
	}
	whole := map[string]bool{}
	for _, a := range attacks {
		whole[a.Name] = true
	}
	var out []Attack
	for _, a := range attacks {
		for _, o := range only {
			if o != "" && (o == a.Name || !whole[o] && strings.Contains(a.Name, o)) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// RunSuite runs the selected attacks one after the other, each against a
// fresh floodgate (and, with Nginx, each HTTP attack against a fresh nginx
// too).
func RunSuite(ctx context.Context, cfg SuiteConfig) ([]*Result, error) {
	attacks := cfg.Attacks
	if attacks == nil {
		attacks = Catalogue()
	}
	attacks = Select(attacks, cfg.Only)
	if len(attacks) == 0 {
		return nil, fmt.Errorf("no attack matches %q", cfg.Only)
	}
	root, err := os.MkdirTemp("", "floodgate-attack-")
	if err != nil {
		return nil, fmt.Errorf("bench attack: %w", err)
	}
	defer os.RemoveAll(root)
	// nginx's workers run as nobody and need to reach their directory.
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, fmt.Errorf("bench attack: %w", err)
	}
	var results []*Result
	for i, a := range attacks {
		servers := []string{"floodgate"}
		if cfg.Nginx && a.Listener == HTTP {
			servers = append(servers, "nginx")
		}
		for _, name := range servers {
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
			if cfg.Progress != nil {
				cfg.Progress(a.Name, name)
			}
			dir, err := os.MkdirTemp(root, fmt.Sprintf("%02d-%s-", i, name))
			if err != nil {
				return results, fmt.Errorf("bench attack: %w", err)
			}
			_ = os.Chmod(dir, 0o755)
			start := Starter{Floodgate: cfg.Floodgate, Server: func(extra ...string) (*Server, error) { return StartFloodgate(cfg.Floodgate, dir, extra...) }}
			if name == "nginx" {
				start = Starter{Server: func(...string) (*Server, error) { return StartNginx(dir) }}
			}
			r, err := Measure(ctx, cfg.Config, a, start, cfg.Scale)
			if err != nil {
				return results, fmt.Errorf("attack %s on %s: %w", a.Name, name, err)
			}
			results = append(results, r)
		}
	}
	return results, nil
}
