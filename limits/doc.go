// Package limits holds every resource limit floodgate enforces: the table
// that names each limit once (flag, default, unit, the Kafka error or HTTP
// status it produces, its metric), the configuration built from it, and the
// accounting the event loops and workers use to enforce them: the memory
// budget and its per-client shares (atomics), charges that own their bytes,
// and token buckets (sharded maps under mutexes).
package limits
