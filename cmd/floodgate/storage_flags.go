package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/broker"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/storage"
)

// storageFlags are the durability flags of serve.
func storageFlags() []cli.Flag {
	const cat = limits.CatStorage
	return []cli.Flag{
		&cli.StringFlag{Name: "data-dir", Value: "./floodgate-data", Category: cat, Usage: "Data `DIR`: topics, segments, offsets"},
		&cli.BoolFlag{Name: "in-memory", Category: cat, Usage: "Keep everything in memory; nothing survives a restart"},
		&cli.GenericFlag{Name: "segment-bytes", Value: &sizeValue{n: 1 << 30}, Category: cat, Usage: "Default segment.bytes of a topic"},
		&cli.StringFlag{Name: "fsync", Value: "interval", Category: cat, Usage: "`MODE`: always (before acks), interval or never"},
		&cli.GenericFlag{Name: "fsync-interval-ms", Value: &durationValue{unit: time.Millisecond, d: 100 * time.Millisecond}, Category: cat,
			Usage: "Period of --fsync=interval (ms)"},
	}
}

// applyStorageFlags sets the broker's storage configuration from the flags.
func applyStorageFlags(c *cli.Context, cfg *broker.Config, log *slog.Logger) error {
	mode, err := storage.ParseFsyncMode(c.String("fsync"))
	if err != nil {
		return fmt.Errorf("--fsync: %w", err)
	}
	seg := sizeFlag(c, "segment-bytes")
	if seg < 1024 || seg > storage.MaxSegmentBytes {
		return fmt.Errorf("--segment-bytes=%d: must be between 1024 and %d", seg, storage.MaxSegmentBytes)
	}
	every := durationFlag(c, "fsync-interval-ms")
	if every < time.Millisecond || every > time.Hour {
		return fmt.Errorf("--fsync-interval-ms=%s: must be between 1ms and 1h", every)
	}
	cfg.SegmentBytes, cfg.Fsync, cfg.FsyncInterval = seg, mode, every
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
