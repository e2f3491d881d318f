package broker

// DescribeConfigs: versions 0-4, for topics (the configs floodgate honours,
// with their source) and for this broker (a few read-only values clients
// ask for). Synonyms and documentation are included when asked for.

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 4, (*Broker).handleDescribeConfigs) }

func (b *Broker) handleDescribeConfigs(req *kmsg.DescribeConfigsRequest, resp *kmsg.DescribeConfigsResponse, _ *Client, respond Responder) {
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		want := func(name string) bool {
			if rr.ConfigNames == nil {
				return true
			}
			for _, n := range rr.ConfigNames {
				if n == name {
					return true
				}
			}
			return false
		}
		add := func(name, value string, src kmsg.ConfigSource, readOnly bool) {
			if !want(name) {
				return
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name, c.Value, c.Source, c.ReadOnly = name, kmsg.StringPtr(value), src, readOnly
			c.IsDefault = src == kmsg.ConfigSourceDefaultConfig
			if req.IncludeSynonyms {
				syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				syn.Name, syn.Value, syn.Source = name, kmsg.StringPtr(value), src
				c.ConfigSynonyms = append(c.ConfigSynonyms, syn)
			}
			sr.Configs = append(sr.Configs, c)
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t := b.lookupTopic(rr.ResourceName)
			if t == nil {
				sr.ErrorCode = kafka.ErrUnknownTopicOrPartition
				break
			}
			b.mu.RLock()
			cfgs := make(map[string]string, len(t.configs))
			for k, v := range t.configs {
				cfgs[k] = v
			}
			b.mu.RUnlock()
			for _, name := range topicConfigNames {
				if v, ok := cfgs[name]; ok {
					add(name, v, kmsg.ConfigSourceDynamicTopicConfig, false)
				} else {
					v, _ := b.topicConfigDefault(name)
					add(name, v, kmsg.ConfigSourceDefaultConfig, false)
				}
			}
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(b.cfg.NodeID)) {
				sr.ErrorCode = kafka.ErrInvalidRequest
				break
			}
			add("broker.id", strconv.Itoa(int(b.cfg.NodeID)), kmsg.ConfigSourceStaticBrokerConfig, true)
			add("num.partitions", strconv.Itoa(int(b.cfg.DefaultPartitions)), kmsg.ConfigSourceStaticBrokerConfig, true)
			add("auto.create.topics.enable", strconv.FormatBool(b.cfg.AutoCreateTopics), kmsg.ConfigSourceStaticBrokerConfig, true)
			add("message.max.bytes", strconv.Itoa(int(b.cfg.MaxMessageBytes)), kmsg.ConfigSourceStaticBrokerConfig, true)
			add("fetch.max.bytes", strconv.FormatInt(b.cfg.MaxFetchBytes, 10), kmsg.ConfigSourceStaticBrokerConfig, true)
			add("default.replication.factor", "1", kmsg.ConfigSourceStaticBrokerConfig, true)
			add("min.insync.replicas", "1", kmsg.ConfigSourceStaticBrokerConfig, true)
			add("log.retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig, true)
		default:
			sr.ErrorCode = kafka.ErrInvalidRequest
		}
		resp.Resources = append(resp.Resources, sr)
	}
	respond(resp)
}
