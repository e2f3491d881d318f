package broker

// DescribeCluster: versions 0-2. One broker, which is also the controller:
// endpoint type 1 (brokers) and 2 (controllers) both list it; other types
// get INVALID_REQUEST. It is never fenced. Authorized operations are not
// computed (there are no ACLs).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 2, (*Broker).handleDescribeCluster) }

func (b *Broker) handleDescribeCluster(req *kmsg.DescribeClusterRequest, resp *kmsg.DescribeClusterResponse, _ *Client, respond Responder) {
	resp.EndpointType = req.EndpointType
	if req.Version >= 1 && req.EndpointType != 1 && req.EndpointType != 2 {
		resp.ErrorCode = kafka.ErrInvalidRequest
		resp.ErrorMessage = kmsg.StringPtr("endpoint type must be 1 (brokers) or 2 (controllers)")
		respond(resp)
		return
	}
	resp.ClusterID = b.cfg.ClusterID
	resp.ControllerID = b.cfg.NodeID
	br := kmsg.NewDescribeClusterResponseBroker()
	br.NodeID, br.Host, br.Port = b.cfg.NodeID, b.cfg.Host, b.cfg.Port
	resp.Brokers = append(resp.Brokers, br)
	respond(resp)
}
