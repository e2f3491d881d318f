package broker

// Which tests run in parallel: those that wait more than they compute
// (group timeouts, the retention sweeper, kgo round trips) call t.Parallel;
// each opens its own broker (and server on 127.0.0.1:0) and asserts nothing
// process-wide. Tests that measure the process (heap, RSS, descriptors,
// goroutines) or bound a latency tightly stay sequential; Go runs every
// sequential test before the parallel ones resume, so nothing parallel
// disturbs them.
