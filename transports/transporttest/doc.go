// Package transporttest runs behaviour tests against a real server on
// loopback, over every transport. A test is written once against Client
// and run with Run(t, testX), which repeats it per transport.
//
// The server is the real router, hub and embedded store, in process, on a
// fresh data directory. Clients speak the real wire protocol over real
// sockets; nothing in between is faked.
package transporttest
