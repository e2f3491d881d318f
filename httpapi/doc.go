// Package httpapi serves floodgate's HTTP routes on the loop's HTTP
// listener: health and readiness, Prometheus metrics, admin stats and the
// REST API for topics.
package httpapi
