package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/acl"
	"github.com/floodgate/floodgate/auth"
	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/httpapi"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// securityFlags are the flags of authentication and authorization.
func securityFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "sasl-mechanisms", Category: limits.CatSecurity, Usage: "SASL on Kafka: PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"},
		&cli.BoolFlag{Name: "auth-required", Category: limits.CatSecurity, Usage: "Kafka clients must authenticate; ACLs enforced"},
		&cli.StringFlag{Name: "super-users", Category: limits.CatSecurity, Usage: "Users that bypass ACLs (comma-separated)"},
		&cli.StringFlag{Name: "http-auth", Value: "none", Category: limits.CatSecurity, Usage: "none or basic (REST and /admin)"},
		&cli.BoolFlag{Name: "metrics-auth", Category: limits.CatSecurity, Usage: "With --http-auth, /metrics needs it too"},
		&cli.StringFlag{Name: "admin-listen", Category: limits.CatSecurity, Usage: "host:port serving /admin, /metrics, /health apart"},
		&cli.StringFlag{Name: "upstream-sasl-mechanism", Category: limits.CatGateway, Usage: "SASL mechanism to the upstream cluster"},
		&cli.StringFlag{Name: "upstream-sasl-username", Category: limits.CatGateway, Usage: "User on the upstream cluster"},
		&cli.StringFlag{Name: "upstream-sasl-password-file", Category: limits.CatGateway, Usage: "File holding the upstream password"},
		&cli.BoolFlag{Name: "allow-everyone-if-no-acl-found", Category: limits.CatSecurity, Usage: "Allow resources no ACL names"},
	}
}

// upstreamMechanism builds the SASL mechanism of the gateway's upstream
// connections, or nil.
func upstreamMechanism(c *cli.Context) (sasl.Mechanism, error) {
	mech := strings.ToUpper(strings.TrimSpace(c.String("upstream-sasl-mechanism")))
	if mech == "" {
		if c.String("upstream-sasl-username") != "" || c.String("upstream-sasl-password-file") != "" {
			return nil, errors.New("--upstream-sasl-username and --upstream-sasl-password-file need --upstream-sasl-mechanism")
		}
		return nil, nil
	}
	user := c.String("upstream-sasl-username")
	if user == "" {
		return nil, fmt.Errorf("--upstream-sasl-mechanism=%s needs --upstream-sasl-username", mech)
	}
	path := c.String("upstream-sasl-password-file")
	if path == "" {
		return nil, fmt.Errorf("--upstream-sasl-mechanism=%s needs --upstream-sasl-password-file", mech)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--upstream-sasl-password-file=%s: %w", path, err)
	}
	defer f.Close()
	pass, err := readPassword(f)
	if err != nil {
		return nil, fmt.Errorf("--upstream-sasl-password-file=%s: %w", path, err)
	}
	switch mech {
	case auth.Plain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case auth.ScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case auth.ScramSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("--upstream-sasl-mechanism=%q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", mech)
}

// httpAccess sets who may use the HTTP routes, and starts the admin
// listener when asked; it returns the admin server (nil when none).
func httpAccess(c *cli.Context, sec *security, api *httpapi.API, log *slog.Logger, set *metrics.Set) (*http.Server, net.Addr, error) {
	acc := httpapi.Access{MetricsAuth: c.Bool("metrics-auth"), AdminElsewhere: c.String("admin-listen") != ""}
	switch mode := c.String("http-auth"); mode {
	case "none":
		if acc.MetricsAuth {
			return nil, nil, errors.New("--metrics-auth needs --http-auth basic")
		}
	case "basic":
		if sec.users == nil {
			return nil, nil, errors.New("--http-auth basic checks the SASL users: give --sasl-mechanisms too")
		}
		acc.Basic = auth.NewBasic(sec.users)
		if sec.authz != nil && sec.authRequired {
			// Under enforced ACLs the operator endpoints need what
			// Kafka's cluster-wide information needs.
			authz := sec.authz
			acc.Admin = func(user, ip string) bool {
				return authz.Authorize(acl.Principal(user), ip, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeCluster, acl.ClusterName)
			}
		}
	default:
		return nil, nil, fmt.Errorf("--http-auth=%q: want none or basic", mode)
	}
	api.SetAccess(acc)
	if !acc.AdminElsewhere {
		return nil, nil, nil
	}
	return startAdmin(c.String("admin-listen"), api, log, set)
}

// guardKafka puts the ACL guard in front of the Kafka handler when SASL
// is on (ACLs in --data-dir/acls.json; enforced with --auth-required).
func guardKafka(c *cli.Context, sec *security, srv *loop.Server, kh loop.KafkaHandler, log *slog.Logger, set *metrics.Set) (loop.KafkaHandler, error) {
	if sec.users == nil {
		return kh, nil
	}
	store, err := acl.OpenStore(c.String("data-dir"))
	if err != nil {
		return nil, err
	}
	var supers []string
	for u := range strings.SplitSeq(c.String("super-users"), ",") {
		if u = strings.TrimSpace(u); u != "" {
			supers = append(supers, u)
		}
	}
	sec.authz = acl.NewAuthorizer(store, supers, c.Bool("allow-everyone-if-no-acl-found"))
	cfg := acl.GuardConfig{Inner: kh, Authorizer: sec.authz, Users: sec.users, Enforce: sec.authRequired, Logger: log, Metrics: set}
	log.Info("ACLs loaded", "acls", len(store.List(acl.Filter{})), "enforced", sec.authRequired, "super_users", supers,
		"allow_everyone_if_no_acl_found", c.Bool("allow-everyone-if-no-acl-found"))
	if _, raw := kh.(loop.RawKafkaHandler); raw {
		// The loop's limits in force: a reload changes them.
		return acl.NewRawGuard(cfg, func() kafka.DecodeLimits {
			l := srv.Limits()
			return kafka.DecodeLimits{MaxPartitions: l.MaxPartitionsPerRequest, MaxNonProduceSize: int(l.MaxNonProduceRequestSize)}
		}), nil
	}
	return acl.NewGuard(cfg), nil
}

// security is what the security flags configure.
type security struct {
	users        *auth.Users // nil when SASL is off
	authn        *auth.Authenticator
	authRequired bool
	authz        *acl.Authorizer // set by guardKafka
}

// loopConfig adds the SASL settings to the loop's configuration.
func (sec *security) loopConfig(cfg loop.Config) loop.Config {
	cfg.SASL, cfg.AuthRequired = sec.authn, sec.authRequired
	return cfg
}

// securityFromFlags opens the users and builds the authenticator.
func securityFromFlags(c *cli.Context, log *slog.Logger) (*security, error) {
	mechs, err := auth.ParseMechanisms(c.String("sasl-mechanisms"))
	if err != nil {
		return nil, fmt.Errorf("--sasl-mechanisms=%q: %w", c.String("sasl-mechanisms"), err)
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
