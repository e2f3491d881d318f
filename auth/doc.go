// Package auth holds floodgate's users and authenticates them: SASL PLAIN
// and SCRAM-SHA-256/512 (RFC 5802, RFC 7677) on the Kafka listener, HTTP
// Basic on the HTTP one.
//
// A user is stored as SCRAM credentials only (salt, iteration count,
// StoredKey, ServerKey per mechanism), never as a password: a stolen users
// file does not give the passwords, and does not let its reader log in with
// SCRAM either (that needs the ClientKey, which is not stored). PLAIN and
// Basic are checked by deriving the StoredKey from the password sent with
// the stored salt and comparing it.
//
// The users file (users.json in the data dir) is written atomically with
// mode 0600 by the `floodgate user` commands and by
// AlterUserScramCredentials; a running server notices a changed file at
// its next authentication (it looks at the file's modification time and
// size at most once a second), so no signal is needed.
package auth
