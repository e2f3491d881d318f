package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/floodgate/floodgate/limits"
)

// Where a setting's value came from, in order of precedence.
const (
	sourceFlag    = "flag"
	sourceEnv     = "env"
	sourceFile    = "file"
	sourceProfile = "profile"
	sourceDefault = "default"
)

// envPrefix starts the environment variable of every flag:
// --max-connections-per-ip is FLOODGATE_MAX_CONNECTIONS_PER_IP.
const envPrefix = "FLOODGATE_"

// configFlagName is the flag naming the configuration file.
const configFlagName = "config"

// limitsBlock is the config file's block that takes the limits document's
// key names (max-total-connections, max-connections-per-client, ...), so
// that the proxy's example configuration translates line by line.
const limitsBlock = "limits"

// configFlags is --config.
func configFlags() []cli.Flag {
	return []cli.Flag{
		// One short line: README's "Configuration file" section explains.
		&cli.StringFlag{Name: configFlagName, Category: limits.CatServer, Usage: "YAML file of flag values, re-read on SIGHUP"},
	}
}

// flagIndex knows the serve command's flags by every name they answer to.
// It is built from the []cli.Flag alone (Names), whatever built them.
type flagIndex struct {
	// primary maps every name and alias to the flag's first name.
	primary map[string]string
	// names lists each flag's names, by first name.
	names map[string][]string
	// list marks flags that take repeated values (a YAML sequence).
	list map[string]bool
	// order is the first names in the command's order.
	order []string
}

func indexFlags(flags []cli.Flag) flagIndex {
	idx := flagIndex{primary: map[string]string{}, names: map[string][]string{}, list: map[string]bool{}}
	for _, f := range flags {
		names := f.Names()
		if len(names) == 0 || names[0] == "help" {
			continue
		}
		p := names[0]
		idx.order = append(idx.order, p)
		idx.names[p] = names
		for _, n := range names {
			idx.primary[n] = p
		}
		switch f := f.(type) {
		case *cli.GenericFlag:
			// A limit row takes one value; other generic flags
			// (--route) are repeated.
			_, single := f.Value.(*limitValue)
			idx.list[p] = !single
		case *cli.StringSliceFlag, *cli.IntSliceFlag, *cli.Int64SliceFlag,
			*cli.Float64SliceFlag, *cli.UintSliceFlag, *cli.Uint64SliceFlag:
			idx.list[p] = true
		}
	}
	return idx
}

// envName returns the environment variable of a flag name.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// setting is one flag's value from the environment or the file.
type setting struct {
	values []string
	// where names the origin for messages: FLOODGATE_X or FILE:LINE.
	where string
}

// layer is the settings one source gives, by flag first name.
type layer map[string]setting

// readEnv reads the FLOODGATE_* variable of every name of every flag
// from environ (os.Environ's form). A flag set under two of its names
// must be given one value. A list flag's variable holds its values
// separated by white space (a --route spec holds none).
func readEnv(idx flagIndex, environ []string) (layer, []string, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix) {
			env[k] = v
		}
	}
	out := layer{}
	for _, p := range idx.order {
		for _, n := range idx.names[p] {
			v, ok := env[envName(n)]
			if !ok {
				continue
			}
			delete(env, envName(n))
			if prev, dup := out[p]; dup {
				if strings.Join(prev.values, " ") != v {
					return nil, nil, fmt.Errorf("%s and %s both set --%s, to different values", prev.where, envName(n), p)
				}
				continue
			}
			vals := []string{v}
			if idx.list[p] {
				vals = strings.Fields(v)
			}
			out[p] = setting{values: vals, where: envName(n)}
		}
	}
	unknown := make([]string, 0, len(env))
	for k := range env {
		unknown = append(unknown, k)
	}
	sort.Strings(unknown)
	return out, unknown, nil
}

// readConfigFile reads a YAML configuration: a mapping of flag names (any
// alias) to values, and a limits: block of the same form. A list flag
// takes a sequence. An unknown key, a flag given twice and a value that is
// not a scalar are errors naming the file's line.
func readConfigFile(path string, idx flagIndex) (layer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	out := layer{}
	if len(doc.Content) == 0 {
		return out, nil // an empty file sets nothing
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config %s:%d: want a mapping of flag names to values", path, root.Line)
	}
	if err := readMapping(path, root, "", idx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// readMapping reads one mapping of flag names to values into out; block
// is "" at the top level, else the block's name.
func readMapping(path string, m *yaml.Node, block string, idx flagIndex, out layer) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], deref(m.Content[i+1])
		at := fmt.Sprintf("%s:%d", path, k.Line)
		key := k.Value
		if block == "" && key == limitsBlock {
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				continue // an empty block
			}
			if v.Kind != yaml.MappingNode {
				return fmt.Errorf("config %s: %s: want a mapping of limit names to values", at, key)
			}
			if err := readMapping(path, v, key, idx, out); err != nil {
				return err
			}
			continue
		}
		full := key
		if block != "" {
			full = block + "." + key
		}
		p, ok := idx.primary[key]
		if !ok {
			return fmt.Errorf("config %s: unknown key %q%s", at, full, suggest(key, idx))
		}
		if p == configFlagName {
			return fmt.Errorf("config %s: %q: a config file cannot name another one", at, full)
		}
		if prev, dup := out[p]; dup {
			return fmt.Errorf("config %s: %q sets --%s again (first set at %s)", at, full, p, prev.where)
		}
		vals, err := scalarValues(v, idx.list[p])
		if err != nil {
			return fmt.Errorf("config %s: %s: %w", at, full, err)
		}
		out[p] = setting{values: vals, where: at}
	}
	return nil
}

// scalarValues returns a value node's text: one scalar, or for a list
// flag a sequence of scalars.
func scalarValues(v *yaml.Node, list bool) ([]string, error) {
	scalar := func(n *yaml.Node) (string, error) {
		n = deref(n)
		if n.Kind != yaml.ScalarNode {
			return "", errors.New("want a single value")
		}
		if n.Tag == "!!null" {
			return "", errors.New("no value")
		}
		return n.Value, nil
	}
	if v.Kind == yaml.SequenceNode {
		if !list {
			return nil, errors.New("takes one value, not a list")
		}
		var out []string
		for _, it := range v.Content {
			s, err := scalar(it)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", it.Line, err)
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := scalar(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

// deref follows a YAML alias (*anchor) to its node.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// suggest names the flag closest to a mistyped key, if one is close.
func suggest(key string, idx flagIndex) string {
	best, bestD := "", 4
	names := make([]string, 0, len(idx.primary))
	for n := range idx.primary {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if d := editDistance(key, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return " (not a flag of floodgate serve)"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// configState is what start-up resolved and a reload needs again.
type configState struct {
	// env is the environment as read at start: a reload does not re-read
	// it (a running process's environment cannot change from outside).
	env layer
	// path is the configuration file ("" for none).
	path string
	// sources says where each flag's value came from, by first name.
	sources map[string]string
	// unknownEnv are FLOODGATE_* variables that name no flag (typos).
	unknownEnv []string
}

// warnUnknownEnv logs the FLOODGATE_* variables that set nothing: a
// mistyped name would otherwise be ignored in silence.
func (st *configState) warnUnknownEnv(log *slog.Logger) {
	if len(st.unknownEnv) > 0 {
		log.Warn("environment variables that name no flag of floodgate serve are ignored", "variables", strings.Join(st.unknownEnv, ","))
	}
}

// loadConfig applies the environment and the configuration file to the
// serve command's flags in c, under the flags given on the command line,
// and records where each value came from. Limit values are then read
// from c as usual: a value from the environment or the file counts as set
// explicitly, so it wins over --limits-profile.
func loadConfig(c *cli.Context, environ []string) (*configState, error) {
	idx := indexFlags(c.Command.Flags)
	env, unknown, err := readEnv(idx, environ)
	if err != nil {
		return nil, err
	}
	st := &configState{env: env, unknownEnv: unknown}
	if err := st.apply(c, idx); err != nil {
		return nil, err
	}
	return st, nil
}

// apply resolves every flag of c by precedence (command line, then the
// environment, then the file) and fills st.path and st.sources.
func (st *configState) apply(c *cli.Context, idx flagIndex) error {
	st.path = ""
	if c.IsSet(configFlagName) {
		st.path = c.String(configFlagName)
	} else if s, ok := st.env[configFlagName]; ok {
		st.path = s.values[0]
	}
	file := layer{}
	if st.path != "" {
		var err error
		if file, err = readConfigFile(st.path, idx); err != nil {
			return err
		}
	}
	st.sources = map[string]string{}
	for _, p := range idx.order {
		if c.IsSet(p) {
			st.sources[p] = sourceFlag
			continue
		}
		s, src := st.env[p], sourceEnv
		if s.values == nil {
			s, src = file[p], sourceFile
		}
		if s.values == nil {
			continue
		}
		for _, v := range s.values {
			if err := c.Set(p, v); err != nil {
				return fmt.Errorf("%s: --%s=%q: %w", s.where, p, v, err)
			}
		}
		st.sources[p] = src
	}
	profile, err := limits.ProfileNamed(c.String("limits-profile"))
	if err != nil {
		return err
	}
	for _, p := range idx.order {
		if _, ok := st.sources[p]; ok {
			continue
		}
		st.sources[p] = sourceDefault
		for _, n := range idx.names[p] {
			if _, ok := profile.Value(n); ok {
				st.sources[p] = sourceProfile
			}
		}
	}
	return nil
}
