//go:build race

package loop

// poisonFrames: race builds (the tests) fill every frame returned to the
// pool with poisonByte, so a frame read after its return corrupts what is
// read from it visibly (records fail their CRC, names change) instead of
// passing by chance.
const poisonFrames = true
