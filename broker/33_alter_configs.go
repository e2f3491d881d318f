package broker

// AlterConfigs: versions 0-2, for topic configs only (broker configs are
// static here: INVALID_REQUEST). As in Kafka, the configs given replace all
// of the topic's dynamic configs: those not named return to their defaults.
// Every value is validated before any is applied. validate_only checks
// without applying.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { regKey(33, 0, 2, (*Broker).handleAlterConfigs) }

func (b *Broker) handleAlterConfigs(kreq kmsg.Request, _ *Client, respond Responder) {
	req := kreq.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	resp.SetVersion(req.Version)
	dups := duplicateResources(len(req.Resources), func(i int) (kmsg.ConfigResourceType, string) {
		return req.Resources[i].ResourceType, req.Resources[i].ResourceName
	})
	changed := false
	for i, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var code int16
		var err error
		if dups[i] {
			code, err = kafka.ErrInvalidRequest, fmt.Errorf("resource %q named more than once", rr.ResourceName)
		} else {
			code, err = b.alterTopicConfigs(rr.ResourceType, rr.ResourceName, req.ValidateOnly, func(cfgs map[string]string) error {
				clear(cfgs)
				for _, c := range rr.Configs {
					if c.Value == nil {
						return fmt.Errorf("config %s has no value", c.Name)
					}
					if err := b.checkTopicConfig(c.Name, *c.Value); err != nil {
						return err
					}
					cfgs[c.Name] = *c.Value
				}
				return nil
			})
			changed = changed || (code == kafka.ErrNone && !req.ValidateOnly)
		}
		sr.ErrorCode = code
		if err != nil {
			sr.ErrorMessage = kmsg.StringPtr(err.Error())
		}
		resp.Resources = append(resp.Resources, sr)
	}
	b.saveTopicsIf(changed)
	respond(resp)
}
