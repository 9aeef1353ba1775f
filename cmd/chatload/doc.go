// Command chatload is chatd's load tool. It runs thousands of simulated
// users against a server, each a transports/client Client (WebSocket, SSE
// or long polling, following tier moves as the browser does), and reports
// latency, throughput, errors, server memory and an exactly-once delivery
// check, as Markdown on stdout and, with --out DIR, as report.md,
// report.json and PNG plots in DIR. Beside its own latency (send call to
// delivery) it gives the server's, from the server's chat_delivery_seconds
// over the measured phase (fan-out to transport write, as bucket bounds):
// when the tool is at its core, its latency includes its own queueing,
// and the server's tells the two apart.
//
// It speaks the protocol only through transports/client; its own HTTP
// calls are the dev login, /readyz, /metrics and the admin status.
//
// # Workloads
//
//   - idle: connect N users and hold. Reports connect time (t50, t95,
//     t99, max: from a client's Run to its first joined envelope) and
//     server RSS per connection (RSS after the connect phase minus RSS
//     before, over N).
//   - broadcast: one room with everyone; --senders S send at --rate each
//     (or --total-rate in all).
//   - chat: rooms of --room-size; every user sends one message per
//     1/--rate seconds (default 10 s), with read receipts (at most one
//     read per second per room, after new messages, as the page does) and
//     a typing signal before 30% of sends.
//   - storm: connect N, then the server dies: with --server-cmd the tool
//     kills it with SIGKILL after --storm-after and starts it again;
//     otherwise it watches /readyz for someone else to kill it. Reports,
//     per client, the time from the server being ready again (and from the
//     crash) to the client's next joined envelope: t50, t95, t99, max.
//     Ready is when /readyz answered 200, or when the first client was
//     back if that was sooner: a server swamped by reconnects answers the
//     tool's /readyz late.
//
// --users 500,1000,5000 runs the workload once per count and writes one
// table. Every run uses fresh rooms, so seqs start at 1.
//
// # Several nodes
//
// --servers URL,URL,... spreads the users over the nodes of a cluster
// (chatd --redis): user i connects to node i mod n, so that every room
// has members on every node and each message is appended by one node and
// delivered by all. Dev-mode users log in at their own node. The tool's
// own calls (admin status, --level) go to --url, by default the first
// node; the server figures (RSS, heap, goroutines, CPU, sessions) are the
// nodes' sums, read from each node's /metrics. Storm and --server-cmd take
// one node.
//
// # Measurements
//
// A message's text starts with its send time (t=<unix ns>), padded to
// --msg-size; each receiver computes the latency on the same clock. The
// report also splits it at the message's stored time (its ts, to the
// millisecond): send to stored, the send's way in, and stored to
// delivery (latency_in and latency_out), which mean something where the
// tool and the server read one clock, as on one machine. Ack latency is
// from the send call to its ack. Latencies go into a fixed
// log-linear histogram (18 KiB each, percentiles within 0.8%, any number
// of samples); a fresh one per sample interval gives p50/p99 over time.
// Connect and storm times are exact (one sample per client).
//
// The exactly-once check: each client records, for its room, the head of
// its first joined envelope and every seq delivered after it. At the end
// the tool reads each room's head (GET history through a client; with
// several nodes, through a client on each node, which must all agree) and
// waits up to --drain for every live client to reach it. A client that
// stayed subscribed must have received every seq from its join point to
// the head, once and in order: gaps and a short tail are lost, repeats
// duplicated, and duplicates the client dropped itself (Stats) are
// counted too. The tail is reported apart (behind): a client still
// behind the head when the drain ends may be late rather than robbed,
// and a longer --drain tells which. Any of them is a failure line; the report is still
// written and the exit status is 1.
//
// The step back up: with --recover D the tool keeps its clients connected
// and idle after the drain, reads the server's level from /metrics every
// 250 ms for up to D, and reports when it was 0 again (or that it was
// not). A tripped breaker holds its level for 30 s before it probes, so
// the graceful degradation scenario waits 90 s.
//
// Error rate is failed operations over operations: connects (a client
// that never subscribes fails), sends (not acked within --send-timeout),
// reads and typing signals.
//
// # Auth
//
// Against a dev-mode server the tool logs every user in (POST
// /v1/dev/login with ids u00001, u00002, ...) before it connects them.
// With --jwt-secret it signs its own HS256 tokens. The admin status
// (level history, connections per transport) uses an admin token made
// the same way.
//
// # Resources
//
// At start the tool raises its RLIMIT_NOFILE soft limit to the hard limit.
// A WebSocket client holds one descriptor in the tool and one in the
// server; an SSE or poll client holds its stream (or held poll) and,
// while a send or read is in flight, a second one. So 10k WebSocket
// clients need about 10k descriptors in each process, well within a
// 20,000 limit; 10k SSE or poll clients may need up to 20k in the tool.
// The tool refuses to start when its estimate exceeds its limit.
//
// Against a loopback target, clients dial from 127.0.0.2-127.0.0.9 in
// turn (--source-ips), so that ephemeral ports (28k per source address)
// do not run out. Clients share one HTTP connection pool per source
// address. Polls over plain HTTP go on the client's own goroutine (a
// request head in one write, the answer's head parsed in place, the
// connection kept for the client's next poll; with --compress it asks
// for gzip and inflates, one inflater per connection) rather than
// through net/http's Transport, whose two goroutines per connection and
// the hand-offs between them took about a tenth of the tool's core with
// 5,000 clients polling, and held it at its core with compression; over
// HTTPS polls go through net/http. The report gives the tool's own RSS
// per client and goroutine peak.
//
// Everything is bounded: --users by 20000, each phase by its timeout,
// the whole invocation by --max-time.
//
// # Examples
//
// The server on one core, the tool on the other (S is any secret):
//
//	taskset -c 0 bin/chatd --addr 127.0.0.1:8080 --data /tmp/load --jwt-secret S &
//	L="taskset -c 1 bin/chatload --url http://127.0.0.1:8080 --jwt-secret S"
//
//	# The seed's table: chat in rooms of 100, each user one message per
//	# 10 s, reads and typing, 70% WebSocket, 20% SSE, 10% polling.
//	$L --workload chat --users 500,1000,5000 --tiers ws=70,sse=20,poll=10 --duration 60s --out out/seed
//	# Broadcast: 5000 receivers at 10 msg/s; 1000 receivers at 1000 msg/s
//	# (200 senders at 5/s each, under the default limit of 10/s per user).
//	$L --workload broadcast --users 5000 --senders 10 --total-rate 10 --duration 60s --out out/bcast-5000
//	$L --workload broadcast --users 1000 --senders 200 --total-rate 1000 --duration 30s --out out/bcast-1000
//	# Three nodes on one Redis (scripts/loadtest.sh cluster starts them).
//	taskset -c 1 bin/chatload --servers http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083 \
//	    --jwt-secret S --workload chat --users 500 --room-size 10 --rate 5 --no-reads --typing 0 --out out/cluster
//	# 10k idle WebSockets in one room.
//	$L --workload idle --users 10000 --duration 30s --out out/idle-10k
//	# Reconnect storm: the tool runs the server itself, kills it with
//	# SIGKILL after 10 s and restarts it.
//	taskset -c 1 bin/chatload --url http://127.0.0.1:8080 --jwt-secret S --workload storm --users 10000 \
//	    --server-cmd "taskset -c 0 bin/chatd --addr 127.0.0.1:8080 --data /tmp/storm --jwt-secret S" \
//	    --storm-after 10s --out out/storm-10k
//
// CHATLOAD_CPUPROFILE=file writes a CPU profile of the tool;
// CHATLOAD_DEBUG_ADDR=host:port serves its net/http/pprof handlers while
// it runs. GOGC, when
// unset, is 400 (the tool trades memory for less collection work); the
// RSS figures are taken after a forced collection. Its clients count the
// read positions of batched receipts and the changes of presence
// envelopes without decoding them (client.Config.CountReads and
// CountChanges): the server sends what it sends a page, and the tool's
// core is not spent on maps and names it would only measure the length
// of. They hand their envelopes to the tool a batch at a time on their
// own delivery goroutine (client.Config.Deliver), not through the Events
// channel: at 10k chat clients that took the tool from 0.88-0.91 of its
// core to 0.77-0.80.
//
// Every connection the tool dials counts the bytes it reads; the report
// gives what the clients received over the measured phase and that per
// delivery (HTTP and WebSocket framing included), the figure that
// compression moves: compare a run with --compress with one without (or
// at --level 1, which turns compression off). With --compress the
// WebSocket clients offer permessage-deflate as a browser does, letting
// the server keep its compression context (transports/wsinflate), and
// the report says on how many connections it did; poll clients ask for
// deflated answers (deflate=), each referring back to the ones before
// it, and inflate them (transports/inflate).
package main
