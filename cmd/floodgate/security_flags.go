package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/auth"
)

// securityFlags are the flags of authentication and authorization.
func securityFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "sasl-mechanisms", Usage: "comma-separated SASL mechanisms served on the Kafka listeners: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (default: none, SASL off). Users are in --data-dir/users.json (floodgate user add), also with --in-memory"},
		&cli.BoolFlag{Name: "auth-required", Usage: "close a Kafka connection that sends anything but ApiVersions/SaslHandshake/SaslAuthenticate before it authenticated (or does not within --sasl-authentication-timeout), and enforce ACLs (needs --sasl-mechanisms)"},
	}
}

// security is what the security flags configure.
type security struct {
	users        *auth.Users // nil when SASL is off
	authn        *auth.Authenticator
	authRequired bool
}

// securityFromFlags opens the users and builds the authenticator.
func securityFromFlags(c *cli.Context, log *slog.Logger) (*security, error) {
	mechs, err := auth.ParseMechanisms(c.String("sasl-mechanisms"))
	if err != nil {
		return nil, fmt.Errorf("--sasl-mechanisms: %w", err)
	}
	sec := &security{authRequired: c.Bool("auth-required")}
	if len(mechs) == 0 {
		if sec.authRequired {
			return nil, errors.New("--auth-required needs --sasl-mechanisms (clients could never authenticate)")
		}
		return sec, nil
	}
	dir := c.String("data-dir")
	if dir == "" {
		return nil, errors.New("--sasl-mechanisms: the users file lives in --data-dir, which is empty")
	}
	if sec.users, err = auth.OpenUsers(dir); err != nil {
		return nil, err
	}
	sec.users.OnReloadError(func(err error) {
		log.Error("users file changed but cannot be read; the previous users stay in force", "error", err.Error())
	})
	sec.authn = auth.NewAuthenticator(sec.users, mechs)
	log.Info("SASL on", "mechanisms", mechs, "auth_required", sec.authRequired, "users", len(sec.users.List()))
	return sec, nil
}
