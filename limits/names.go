package limits

// Names of renamed limits that the loop and the HTTP API name in refusals
// and logs: each is a row's Flag (TestNamesAreFlags), the name an operator
// finds in --help, not one of its former names (still accepted as aliases).
const (
	// RequestMemoryBytes is the memory budget of requests and answers
	// (formerly memory-limit-bytes).
	RequestMemoryBytes = "request-memory-bytes"
	// RequestMemoryPerIPPercent is one IP's share of the memory budget
	// (formerly memory-limit-per-ip-percent).
	RequestMemoryPerIPPercent = "request-memory-per-ip-percent"
	// MaxProcessMemoryBytes is the process memory limit, with
	// max-process-memory-percent (formerly max-memory-bytes).
	MaxProcessMemoryBytes = "max-process-memory-bytes"
	// MaxInFlightPerEventLoop bounds the HTTP requests in flight on one
	// event loop (formerly max-in-flight-requests-per-worker).
	MaxInFlightPerEventLoop = "max-in-flight-requests-per-event-loop"
)

// publishedLabels are the limit label values of series published before
// their limit was renamed: dashboards and alert rules select on label
// values, so these keep the former name.
var publishedLabels = map[string]string{
	RequestMemoryBytes:        "memory-limit-bytes",
	RequestMemoryPerIPPercent: "memory-limit-per-ip-percent",
	MaxProcessMemoryBytes:     "max-memory-bytes",
	MaxInFlightPerEventLoop:   "max-in-flight-requests-per-worker",
}

// Label returns the value of the limit label that metric series
// (floodgate_http_limit_tripped_total, floodgate_http_refused_total) carry
// for the limit called flag: the flag, or for a limit renamed after its
// series were published, the former name the series have always carried.
func Label(flag string) string {
	if l, ok := publishedLabels[flag]; ok {
		return l
	}
	return flag
}
