// Package broker is floodgate's embedded Kafka broker: topics and partitions
// with an append-only log of record batches, and one file per Kafka API
// (named by key, as 00_produce.go) that answers decoded kmsg requests.
//
// The handler table registered in New is the single source of the versions
// floodgate advertises in ApiVersions, so the advertised ranges cannot
// drift from the handlers that exist.
package broker
