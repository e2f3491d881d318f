package broker

// IncrementalAlterConfigs: versions 0-1, for topic configs only (broker
// configs are static here: INVALID_REQUEST). SET and DELETE apply to any
// topic config floodgate honours; APPEND and SUBTRACT only to list configs,
// of which there is one, cleanup.policy, whose only allowed value is
// "delete". A resource's changes are validated together and applied at
// once, or not at all (INVALID_CONFIG). validate_only checks without
// applying.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 1, (*Broker).handleIncrementalAlterConfigs) }

func (b *Broker) handleIncrementalAlterConfigs(req *kmsg.IncrementalAlterConfigsRequest, resp *kmsg.IncrementalAlterConfigsResponse, _ *Client, respond Responder) {
	rs := req.Resources
	b.alterResources(len(rs), func(i int) (kmsg.ConfigResourceType, string) { return rs[i].ResourceType, rs[i].ResourceName },
		req.ValidateOnly,
		func(i int, cfgs map[string]string) error {
			return incrementalChange(cfgs, rs[i].Configs, b.checkTopicConfig)
		},
		func(i int, code int16, msg *string) {
			sr := kmsg.NewIncrementalAlterConfigsResponseResource()
			sr.ResourceType, sr.ResourceName = rs[i].ResourceType, rs[i].ResourceName
			sr.ErrorCode, sr.ErrorMessage = code, msg
			resp.Resources = append(resp.Resources, sr)
		})
	respond(resp)
}

// alterResources is the loop of AlterConfigs and IncrementalAlterConfigs
// over their n resources (at names resource i): a resource named twice is
// refused, every other one is edited by change through alterTopicConfigs;
// answer receives each outcome in request order, and topics.json is
// written once when any topic changed.
func (b *Broker) alterResources(n int, at func(i int) (kmsg.ConfigResourceType, string), validateOnly bool,
	change func(i int, cfgs map[string]string) error, answer func(i int, code int16, msg *string)) {
	dups := duplicateResources(n, at)
	changed := false
	for i := 0; i < n; i++ {
		typ, name := at(i)
		var code int16
		var err error
		if dups[i] {
			code, err = kafka.ErrInvalidRequest, fmt.Errorf("resource %q named more than once", name)
		} else {
			code, err = b.alterTopicConfigs(typ, name, validateOnly, func(cfgs map[string]string) error { return change(i, cfgs) })
			changed = changed || (code == kafka.ErrNone && !validateOnly)
		}
		var msg *string
		if err != nil {
			msg = kmsg.StringPtr(err.Error())
		}
		answer(i, code, msg)
	}
	b.saveTopicsIf(changed)
}

// incrementalChange applies ops to cfgs; check validates a value set.
func incrementalChange(cfgs map[string]string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig, check func(name, value string) error) error {
	seen := map[string]bool{}
	for _, c := range ops {
		if seen[c.Name] {
			return fmt.Errorf("config %s altered more than once", c.Name)
		}
		seen[c.Name] = true
		value := ""
		if c.Value != nil {
			value = *c.Value
		}
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if c.Value == nil {
				return fmt.Errorf("config %s: SET needs a value", c.Name)
			}
			if err := check(c.Name, value); err != nil {
				return err
			}
			cfgs[c.Name] = value
		case kmsg.IncrementalAlterConfigOpDelete:
			if err := validateTopicConfigName(c.Name); err != nil {
				return err
			}
			delete(cfgs, c.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if c.Name != "cleanup.policy" {
				return fmt.Errorf("config %s is not a list: %v is only for list configs", c.Name, c.Op)
			}
			if c.Op == kmsg.IncrementalAlterConfigOpSubtract {
				return fmt.Errorf("cleanup.policy: floodgate supports only delete, which cannot be removed")
			}
			if err := validateTopicConfig(c.Name, value); err != nil {
				return err
			}
			cfgs[c.Name] = value
		default:
			return fmt.Errorf("config %s: unknown operation %d", c.Name, c.Op)
		}
	}
	return nil
}

// validateTopicConfigName checks that name is a topic config floodgate
// honours.
func validateTopicConfigName(name string) error {
	for _, n := range topicConfigNames {
		if n == name {
			return nil
		}
	}
	return fmt.Errorf("%s: unknown topic config", name)
}

// saveTopicsIf writes topics.json when a request changed topics.
func (b *Broker) saveTopicsIf(changed bool) {
	if !changed {
		return
	}
	b.mu.Lock()
	b.saveTopicsLocked()
	b.mu.Unlock()
}

// duplicateResources marks the resources named more than once.
func duplicateResources(n int, at func(int) (kmsg.ConfigResourceType, string)) []bool {
	type key struct {
		t    kmsg.ConfigResourceType
		name string
	}
	count := map[key]int{}
	for i := 0; i < n; i++ {
		t, name := at(i)
		count[key{t, name}]++
	}
	out := make([]bool, n)
	for i := range out {
		t, name := at(i)
		out[i] = count[key{t, name}] > 1
	}
	return out
}

// alterTopicConfigs changes the configs of one topic resource: change edits
// a copy, which replaces the topic's configs (under b.mu) unless
// validateOnly is set.
func (b *Broker) alterTopicConfigs(typ kmsg.ConfigResourceType, name string, validateOnly bool, change func(map[string]string) error) (int16, error) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
	case kmsg.ConfigResourceTypeBroker:
		return kafka.ErrInvalidRequest, fmt.Errorf("broker configs cannot be altered in floodgate: they are set at start")
	default:
		return kafka.ErrInvalidRequest, fmt.Errorf("resource type %v cannot be altered", typ)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[name]
	if t == nil {
		return kafka.ErrUnknownTopicOrPartition, fmt.Errorf("topic %q does not exist", name)
	}
	cfgs := make(map[string]string, len(t.configs))
	for k, v := range t.configs {
		cfgs[k] = v
	}
	if err := change(cfgs); err != nil {
		return kafka.ErrInvalidConfig, fmt.Errorf("topic %q: %w", name, err)
	}
	if !validateOnly {
		t.configs = cfgs // the caller writes topics.json once per request
		b.log.Info("topic configs altered", "topic", name)
	}
	return kafka.ErrNone, nil
}
