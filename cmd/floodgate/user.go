package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/auth"
)

// userCommand manages the users of SASL and HTTP Basic authentication.
func userCommand() *cli.Command {
	dir := &cli.StringFlag{Name: "data-dir", Value: "./floodgate-data", Usage: "directory holding users.json (the server's --data-dir)"}
	return &cli.Command{
		Name:  "user",
		Usage: "add, delete or list the users of SASL and HTTP Basic auth",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add a user or change its password; the password is read from stdin (its first line)",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{dir,
					&cli.StringFlag{Name: "mechanisms", Value: auth.ScramSHA256 + "," + auth.ScramSHA512, Usage: "SCRAM credentials to store (PLAIN and HTTP Basic check the password against any of them)"},
					&cli.IntFlag{Name: "iterations", Value: auth.DefaultIterations, Usage: fmt.Sprintf("PBKDF2 iterations (%d..%d)", auth.MinIterations, auth.MaxIterations)},
				},
				Action: userAdd,
			},
			{
				Name:      "delete",
				Usage:     "delete a user",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{dir},
				Action:    userDelete,
			},
			{
				Name:   "list",
				Usage:  "list the users and their mechanisms",
				Flags:  []cli.Flag{dir},
				Action: userList,
			},
		},
	}
}

// oneName returns the command's single NAME argument. Flags after NAME
// (`user add alice --data-dir DIR`, which the CLI library leaves as
// arguments) are applied as if they came first.
func oneName(c *cli.Context) (string, error) {
	var names []string
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		a := args[i]
		flag, ok := strings.CutPrefix(strings.TrimPrefix(a, "-"), "-")
		if !ok && !strings.HasPrefix(a, "-") {
			names = append(names, a)
			continue
		}
		if !ok {
			flag = strings.TrimPrefix(a, "-")
		}
		name, value, hasValue := strings.Cut(flag, "=")
		if !hasValue {
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value", a)
			}
			i++
			value = args[i]
		}
		if err := c.Set(name, value); err != nil {
			return "", fmt.Errorf("flag %s: %w", a, err)
		}
	}
	if len(names) != 1 {
		return "", fmt.Errorf("want one user NAME, got %d: %q", len(names), names)
	}
	return names[0], auth.ValidName(names[0])
}

func userAdd(c *cli.Context) error {
	name, err := oneName(c)
	if err != nil {
		return err
	}
	mechs, err := auth.ParseMechanisms(c.String("mechanisms"))
	if err != nil {
		return err
	}
	if len(mechs) == 0 || slices.Contains(mechs, auth.Plain) {
		return fmt.Errorf("--mechanisms=%q: want SCRAM-SHA-256 and/or SCRAM-SHA-512 (PLAIN is checked against them)", c.String("mechanisms"))
	}
	pass, err := readPassword(c.App.Reader)
	if err != nil {
		return err
	}
	users, err := auth.OpenUsers(c.String("data-dir"))
	if err != nil {
		return err
	}
	for _, mech := range mechs {
		cred, err := auth.NewCredential(mech, pass, c.Int("iterations"))
		if err != nil {
			return err
		}
		if err := users.Set(name, mech, cred); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.App.Writer, "user %s: %s stored\n", name, strings.Join(mechs, ", "))
	return nil
}

// readPassword reads the first line of r (a pipe or a terminal; the
// terminal echoes it: prefer a pipe or a file).
func readPassword(r io.Reader) (string, error) {
	if r == nil {
		r = os.Stdin
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pass := strings.TrimRight(line, "\r\n")
	if pass == "" {
		return "", errors.New("empty password on stdin (give it on the first line, e.g. `echo secret | floodgate user add NAME`)")
	}
	return pass, nil
}

func userDelete(c *cli.Context) error {
	name, err := oneName(c)
	if err != nil {
		return err
	}
	users, err := auth.OpenUsers(c.String("data-dir"))
	if err != nil {
		return err
	}
	if err := users.Delete(name, ""); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "user %s deleted\n", name)
	return nil
}

func userList(c *cli.Context) error {
	users, err := auth.OpenUsers(c.String("data-dir"))
	if err != nil {
		return err
	}
	for _, u := range users.List() {
		var ms []string
		for _, m := range auth.ScramMechanisms {
			if it, ok := u.Mechanisms[m]; ok {
				ms = append(ms, fmt.Sprintf("%s(iterations=%d)", m, it))
			}
		}
		fmt.Fprintf(c.App.Writer, "%s\t%s\n", u.Name, strings.Join(ms, " "))
	}
	return nil
}
