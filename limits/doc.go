// Package limits holds every resource limit floodgate enforces: the table
// that names each limit once (flag, default, unit, the Kafka error or HTTP
// status it produces, its metric), the configuration built from it, and the
// lock-free accounting primitives the event loops use to enforce them
// (token buckets, the memory budget, connection counters).
package limits
