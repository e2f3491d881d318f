// Package storage keeps partition logs on disk: append-only segment files
// holding Kafka record batches byte for byte as the broker stamped them, a
// sparse offset index and a time index per segment, recovery of a torn or
// corrupt tail at open, segment roll and whole-segment retention, and the
// fsync policy (always with group commit, interval, never).
//
// On-disk layout of one partition directory:
//
//	00000000000000000000.log        record batches, back to back (v2 format)
//	00000000000000000000.index      sparse offset index: 8-byte entries
//	                                (offset - base uint32, file position uint32)
//	00000000000000000000.timeindex  time index: 12-byte entries
//	                                (max timestamp before the entry int64,
//	                                 offset - base uint32)
//	start-offset                    the log start offset when DeleteRecords
//	                                moved it inside a segment (decimal text)
//
// A segment is named by its base offset, zero-padded to 20 digits. The i-th
// entries of .index and .timeindex describe the same batch: an entry is
// added for the first batch of a segment and then for the first batch after
// at least IndexIntervalBytes of log, so a lookup scans at most that many
// bytes of batch headers. The timestamp of a time index entry is the largest
// max-timestamp of all batches before the indexed one, which makes "first
// batch with max timestamp >= T" exact with one bounded scan.
//
// Indexes are written with the log (plain write(2), no buffering), so after
// a process crash they match the log; after a power loss they are checked
// against the log and cut back where they point past it.
//
// Files are opened on use through a FileCache shared by every log of the
// process, which closes the least recently used idle segments beyond its
// descriptor budget: an idle partition holds no descriptor.
//
// A sealed segment found damaged (truncated, or a malformed batch header)
// is fenced at its last good batch: reads skip from there to the next
// segment, Options.OnFence is told once, and retention deletes it as any
// other. The file is left as it is.
package storage
