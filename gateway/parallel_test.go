package gateway_test

// Which tests run in parallel: those that wait more than they compute
// (kgo round trips through the gateway to kfake, upstream failures) call
// t.Parallel; each starts its own kfake cluster and gateway on 127.0.0.1
// and asserts nothing process-wide. Tests that bound a latency behind
// another client's long poll or a dial, time rate-limited warnings, or stop
// a gateway and start it again on the same ports (ha_test.go: another
// test's ephemeral port could take them in between) stay sequential; Go
// runs every sequential test before the parallel ones resume.
