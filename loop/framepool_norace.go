//go:build !race

package loop

// poisonFrames is off outside race builds (see framepool_race.go).
const poisonFrames = false
