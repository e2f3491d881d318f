package broker

// ApiVersions: versions 0-3, answered from the handler table so that what is
// advertised is exactly what is served. Unsupported versions never reach
// here: the loop answers them with a v0 response and UNSUPPORTED_VERSION, as
// Kafka does. No features (KIP-584) are advertised.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func (b *Broker) handleAPIVersions(req kmsg.Request, _ *Client, respond Responder) {
	respond(kafka.APIVersionsResponse(b, req.GetVersion(), kafka.ErrNone))
}
