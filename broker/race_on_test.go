//go:build race

package broker_test

// raceEnabled: allocation bounds are not checked under the race detector,
// which allocates for its own bookkeeping.
const raceEnabled = true
