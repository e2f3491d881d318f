package main

// Which tests run in parallel: those that drive their own floodgate child
// process on 127.0.0.1:0 and mostly wait on it (SIGHUP reloads, REST
// consumer polls, kcat logins, go build) call t.Parallel. Tests that parse
// flags or the environment in this process (t.Setenv), measure a child's
// RSS or bound its latency, or pick ports first and bind them later
// (loopback.FreePortRange) stay sequential; Go runs every sequential test
// before the parallel ones resume.
