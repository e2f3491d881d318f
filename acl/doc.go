// Package acl holds floodgate's access control lists and enforces them on
// Kafka requests, as Apache Kafka's StandardAuthorizer does.
//
// A binding allows or denies one principal ("User:alice", or "User:*" for
// everyone) from one host ("*" for any) one operation on the resources a
// pattern names: a topic, group, transactional id or the cluster, by
// literal name ("*" for all) or by name prefix. DENY wins over ALLOW;
// ALL matches every operation; READ, WRITE, DELETE and ALTER imply
// DESCRIBE, and ALTER_CONFIGS implies DESCRIBE_CONFIGS. A resource no
// binding matches is denied unless --allow-everyone-if-no-acl-found.
// Super users (--super-users) bypass every check. A producer's
// InitProducerId without a transactional id is allowed with WRITE on any
// topic or IDEMPOTENT_WRITE on the cluster (KIP-679).
//
// The bindings live in acls.json in the data dir, written atomically
// (0600) on every CreateAcls and DeleteAcls, and read at start.
//
// Guard (guard.go) wraps the broker or gateway: it checks each request's
// resources, forwards the authorized part, answers the rest with the
// API's authorization error (TOPIC_AUTHORIZATION_FAILED,
// GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED,
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED) in its place, and filters
// Metadata and ListGroups to what the principal may describe. It also
// serves the ACL APIs and the SCRAM user APIs, and logs every change
// (topics, configs, ACLs, users) at INFO with the principal and client IP.
package acl
