package gateway

// PipeHolders returns how many client connections and client IPs hold
// pipes of g's pool now (the entries of its maps), for tests of package
// gateway_test.
func PipeHolders(g *Gateway) (conns, ips int) {
	pp := g.pipes
	if pp == nil {
		return 0, 0
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return len(pp.held), len(pp.ips)
}
