// Package transporttest runs behaviour tests against a real server on
// loopback, over every transport. A test is written once against Client
// and run with Run(t, testX), which repeats it per transport.
//
// The server is the real router, hub and embedded store, in process, on a
// fresh data directory. Clients speak the real wire protocol over real
// sockets; nothing in between is faked.
//
// A Cluster is several such nodes on one real redis-server (the Redis
// engine, as chatd runs with --redis); a test dials its clients to
// different nodes, and can kill a node as kill -9 would.
package transporttest
