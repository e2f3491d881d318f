package broker

// ApiVersions: versions 0-3, answered from the handler table so that what is
// advertised is exactly what is served. Unsupported versions never reach
// here: the loop answers them with a v0 response and UNSUPPORTED_VERSION, as
// Kafka does. No features (KIP-584) are advertised.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { registerReq(0, 3, (*Broker).handleAPIVersions) }

func (b *Broker) handleAPIVersions(req *kmsg.ApiVersionsRequest, _ *Client, respond Responder) {
	v := req.Version
	if int(v) < len(b.apiVersions) && b.apiVersions[v] != nil {
		// Built once in Open: the handler table never changes afterwards,
		// and responses are only read (encoded) after this.
		respond(b.apiVersions[v])
		return
	}
	respond(kafka.APIVersionsResponse(b, v, kafka.ErrNone))
}

// buildAPIVersions prepares the ApiVersions responses of every served version.
func (b *Broker) buildAPIVersions() {
	_, max, _ := b.VersionRange(18)
	for v := int16(0); v <= max && int(v) < len(b.apiVersions); v++ {
		b.apiVersions[v] = kafka.APIVersionsResponse(b, v, kafka.ErrNone)
	}
}
