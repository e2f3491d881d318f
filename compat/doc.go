// Package compat is floodgate's client compatibility suite: its tests drive
// real Kafka client libraries — franz-go (kgo and kadm), IBM/sarama,
// segmentio/kafka-go, librdkafka through kcat, and kafkajs through node —
// against a real floodgate and check, for each one, that records produced
// arrive, that a consumer group of two members shares the partitions and
// sees every record exactly once, that a restarted member resumes from the
// committed offsets, and that groups can be listed and described.
//
// The Go clients run against an in-process server (internal/testserver); kcat
// and kafkajs run as child processes against the floodgate binary, built
// once per test run. A client whose tool is missing (kcat, node/npm) is
// skipped with a loud message; everything else is a failure.
//
// The package holds tests only; compat/js holds the kafkajs driver script
// and its locked npm dependencies.
package compat
