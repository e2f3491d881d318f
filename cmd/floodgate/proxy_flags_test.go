package main

import (
	"slices"
	"testing"
)

func TestProxyProtocolFromTakesCIDRsAndAddresses(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}, false},
		{"10.1.2.3/8, 192.0.2.1", []string{"10.0.0.0/8", "192.0.2.1/32"}, false},
		{"2001:db8::/32,::1", []string{"2001:db8::/32", "::1/128"}, false},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}, false},
		{"::ffff:192.0.2.1", []string{"192.0.2.1/32"}, false},
		{"10.0.0.0/33", nil, true},
		{"lb.example", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parsePrefixes(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v; want error %v", err, tt.wantErr)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if !slices.Equal(s, tt.want) {
				t.Fatalf("got %v; want %v", s, tt.want)
			}
			for _, p := range got {
				if p != p.Masked() || p.Addr().Is4In6() {
					t.Fatalf("%v is not in canonical form", p)
				}
			}
		})
	}
}
