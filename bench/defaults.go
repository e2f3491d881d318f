package bench

// PositiveOr is v, or def when v is not positive: how a run's settings
// that were left at zero (or set below it) take their defaults.
func PositiveOr[T ~int | ~int32 | ~int64 | ~float64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
