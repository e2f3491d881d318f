// Package kafka is floodgate's Kafka wire codec: it reads frame lengths and
// request headers by peeking at bytes the event loop has buffered, decodes and
// encodes message bodies with kmsg into reused buffers, and builds
// protocol-correct error responses for requests floodgate refuses.
//
// Nothing here allocates a buffer of a frame's announced size: callers decide
// from the length prefix and the header whether to buffer a frame at all.
package kafka
