package auth

import "testing"

// BenchmarkBasicCheck: a Basic header checked once costs a PBKDF2
// derivation; the same header again is a cache hit.
func BenchmarkBasicCheck(b *testing.B) {
	u, _ := OpenUsers(b.TempDir())
	cred, _ := NewCredential(ScramSHA256, "pw", DefaultIterations)
	_ = u.Set("alice", ScramSHA256, cred)
	hdr := "Basic YWxpY2U6cHc=" // alice:pw
	b.Run("derivation", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if !u.CheckPassword("alice", "pw") {
				b.Fatal("refused")
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		bc := NewBasic(u)
		bc.Check(hdr, "127.0.0.1")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, r := bc.Check(hdr, "127.0.0.1"); r != BasicOK {
				b.Fatal("refused")
			}
		}
	})
}
