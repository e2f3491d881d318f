package acl_test

// Every test here that starts a server calls t.Parallel: each owns its
// data directory, users, ACL store and server on 127.0.0.1:0 (the gateway
// tests their kfake cluster), asserts only what its own clients are
// answered, and mostly waits on round trips and on the 500 ms of a
// server's Stop.
