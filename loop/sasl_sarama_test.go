package loop_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/floodgate/floodgate/limits"
)

// saramaSCRAM adapts franz-go's SCRAM client to sarama's SCRAMClient
// interface (sarama has no SCRAM of its own).
type saramaSCRAM struct {
	sha512  bool
	session sasl.Session
	first   []byte
	done    bool
}

func (s *saramaSCRAM) Begin(user, pass, _ string) error {
	a := scram.Auth{User: user, Pass: pass}
	mech := a.AsSha256Mechanism()
	if s.sha512 {
		mech = a.AsSha512Mechanism()
	}
	var err error
	s.session, s.first, err = mech.Authenticate(context.Background(), "")
	return err
}

func (s *saramaSCRAM) Step(challenge string) (string, error) {
	if s.first != nil {
		out := s.first
		s.first = nil
		return string(out), nil
	}
	done, out, err := s.session.Challenge([]byte(challenge))
	s.done = done
	return string(out), err
}

func (s *saramaSCRAM) Done() bool { return s.done }

// TestSaramaAuthenticatesWithHandshakeV0AndV1: sarama's SaslHandshake v0
// (bare SASL tokens without a Kafka header follow it) and v1 (tokens in
// SaslAuthenticate), with PLAIN and SCRAM; a wrong password is refused in
// both framings.
func TestSaramaAuthenticatesWithHandshakeV0AndV1(t *testing.T) {
	t.Parallel()
	s := startSASL(t, func(c *limits.Config) { c.SASLFailedAuthenticationDelay = 50 * time.Millisecond })
	for _, tc := range []struct {
		name    string
		version int16
		mech    sarama.SASLMechanism
	}{
		{"v0/PLAIN", sarama.SASLHandshakeV0, sarama.SASLTypePlaintext},
		{"v0/SCRAM-SHA-256", sarama.SASLHandshakeV0, sarama.SASLTypeSCRAMSHA256},
		{"v1/PLAIN", sarama.SASLHandshakeV1, sarama.SASLTypePlaintext},
		{"v1/SCRAM-SHA-512", sarama.SASLHandshakeV1, sarama.SASLTypeSCRAMSHA512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := func(pass string) *sarama.Config {
				c := sarama.NewConfig()
				c.Version = sarama.V2_8_0_0
				c.Producer.Return.Successes = true
				c.Metadata.Retry.Max = 0
				c.Net.SASL.Enable = true
				c.Net.SASL.Version = tc.version
				c.ApiVersionsRequest = tc.version != sarama.SASLHandshakeV0 // sarama refuses both together
				c.Net.SASL.Mechanism = tc.mech
				c.Net.SASL.User, c.Net.SASL.Password = "alice", pass
				c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
					return &saramaSCRAM{sha512: tc.mech == sarama.SASLTypeSCRAMSHA512}
				}
				return c
			}
			p, err := sarama.NewSyncProducer([]string{s.KafkaAddr()}, cfg("alice-secret"))
			if err != nil {
				t.Fatalf("sarama with the right password: %v", err)
			}
			defer p.Close()
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "sarama-sasl", Value: sarama.StringEncoder("x")}); err != nil {
				t.Fatalf("produce: %v", err)
			}
			if bad, err := sarama.NewSyncProducer([]string{s.KafkaAddr()}, cfg("wrong")); err == nil {
				bad.Close()
				t.Fatal("sarama with a wrong password connected")
			}
		})
	}
}
