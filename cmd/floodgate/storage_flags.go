package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/broker"
	"github.com/floodgate/floodgate/storage"
)

// storageFlags are the durability flags of serve.
func storageFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "data-dir", Value: "./floodgate-data", Usage: "directory of topics, partition segments and committed offsets"},
		&cli.BoolFlag{Name: "in-memory", Usage: "keep everything in memory (nothing survives a restart); --data-dir is not used"},
		&cli.Int64Flag{Name: "segment-bytes", Value: 1 << 30, Usage: "default segment.bytes: a partition's segment file rolls before it grows past this (bytes, at most 2147483647)"},
		&cli.StringFlag{Name: "fsync", Value: "interval", Usage: "always|interval|never: always answers acks=1/-1 produces after their fsync (group commit); interval fsyncs every --fsync-interval-ms (acknowledged data survives a process crash, at most one interval is at risk on power loss); never leaves it to the OS"},
		&cli.Int64Flag{Name: "fsync-interval-ms", Value: 100, Usage: "period of --fsync=interval (milliseconds)"},
	}
}

// applyStorageFlags sets the broker's storage configuration from the flags.
func applyStorageFlags(c *cli.Context, cfg *broker.Config, log *slog.Logger) error {
	mode, err := storage.ParseFsyncMode(c.String("fsync"))
	if err != nil {
		return fmt.Errorf("--fsync: %w", err)
	}
	seg := c.Int64("segment-bytes")
	if seg < 1024 || seg > storage.MaxSegmentBytes {
		return fmt.Errorf("--segment-bytes=%d: must be between 1024 and %d", seg, storage.MaxSegmentBytes)
	}
	ms := c.Int64("fsync-interval-ms")
	if ms < 1 || ms > 3_600_000 {
		return fmt.Errorf("--fsync-interval-ms=%d: must be between 1 and 3600000", ms)
	}
	cfg.SegmentBytes, cfg.Fsync, cfg.FsyncInterval = seg, mode, time.Duration(ms)*time.Millisecond
	if c.Bool("in-memory") {
		log.Info("storage in memory: nothing survives a restart")
		return nil
	}
	cfg.DataDir = c.String("data-dir")
	if cfg.DataDir == "" {
		return fmt.Errorf("--data-dir is empty: give a directory or --in-memory")
	}
	log.Info("storage on disk", "data_dir", cfg.DataDir, "fsync", mode.String(), "fsync_interval", cfg.FsyncInterval, "segment_bytes", seg)
	return nil
}
