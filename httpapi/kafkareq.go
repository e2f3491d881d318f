package httpapi

import "github.com/twmb/franz-go/pkg/kmsg"

// Helpers for building the kmsg requests the REST routes and the consumer
// instances send to the Kafka handler.

// requestTopic returns the entry of topic in a request's topic list, which
// names each topic once: the entry made by fresh the first time topic is
// seen (at remembers where each topic's entry is). The pointer is valid
// until the next call appends to topics.
func requestTopic[T any](at map[string]int, topics *[]T, topic string, fresh func(topic string) T) *T {
	i, ok := at[topic]
	if !ok {
		i = len(*topics)
		at[topic] = i
		*topics = append(*topics, fresh(topic))
	}
	return &(*topics)[i]
}

// metadataTopics is the topic list of a Metadata request naming topics;
// nil asks for every topic.
func metadataTopics(topics []string) []kmsg.MetadataRequestTopic {
	if topics == nil {
		return nil
	}
	out := make([]kmsg.MetadataRequestTopic, 0, len(topics))
	for _, t := range topics {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(t)
		out = append(out, mt)
	}
	return out
}

// kafkaRequest returns a new request of type R at the highest version in
// [min, want] that the Kafka handler serves (the key is R's own), or false
// when it serves none of them.
func kafkaRequest[R any, P interface {
	*R
	kmsg.Request
	Default()
}](a *API, min, want int16) (P, bool) {
	req := P(new(R))
	req.Default()
	v, ok := a.version(req.Key(), min, want)
	if !ok {
		return nil, false
	}
	req.SetVersion(v)
	return req, true
}
