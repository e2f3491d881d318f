package broker

// AlterConfigs: versions 0-2, for topic configs only (broker configs are
// static here: INVALID_REQUEST). As in Kafka, the configs given replace all
// of the topic's dynamic configs: those not named return to their defaults.
// Every value is validated before any is applied. validate_only checks
// without applying.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 2, (*Broker).handleAlterConfigs) }

func (b *Broker) handleAlterConfigs(req *kmsg.AlterConfigsRequest, resp *kmsg.AlterConfigsResponse, _ *Client, respond Responder) {
	rs := req.Resources
	b.alterResources(len(rs), func(i int) (kmsg.ConfigResourceType, string) { return rs[i].ResourceType, rs[i].ResourceName },
		req.ValidateOnly,
		func(i int, cfgs map[string]string) error {
			return replaceConfigs(cfgs, rs[i].Configs, b.checkTopicConfig)
		},
		func(i int, code int16, msg *string) {
			sr := kmsg.NewAlterConfigsResponseResource()
			sr.ResourceType, sr.ResourceName = rs[i].ResourceType, rs[i].ResourceName
			sr.ErrorCode, sr.ErrorMessage = code, msg
			resp.Resources = append(resp.Resources, sr)
		})
	respond(resp)
}

// replaceConfigs makes cfgs the configs given, and only them; check
// validates each value.
func replaceConfigs(cfgs map[string]string, given []kmsg.AlterConfigsRequestResourceConfig, check func(name, value string) error) error {
	clear(cfgs)
	for _, c := range given {
		if c.Value == nil {
			return fmt.Errorf("config %s has no value", c.Name)
		}
		if err := check(c.Name, *c.Value); err != nil {
			return err
		}
		cfgs[c.Name] = *c.Value
	}
	return nil
}
