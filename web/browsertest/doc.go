// Package browsertest drives the chat page in headless Chromium
// (/usr/bin/chromium, through chromedp) against a real chatd process: two
// users chatting, a server killed and restarted, legacy browsers on
// long-polling, WebSocket refused by a proxy, a busy server that must not
// push the page off WebSocket, tabs of one user converging, and XSS
// payloads rendered inert.
//
// The package holds tests only. It builds ./cmd/chatd once, runs it as a
// subprocess per test on a free loopback port, and shares one browser
// process across the tests; each simulated user gets a browser context of
// its own (separate storage), and each tab of a user a target in that
// context. Waits are bounded polls of the page state, never sleeps.
//
// It talks to the server over HTTP only, and imports nothing of the
// project but in the cluster test (cluster_test.go), which builds three
// nodes in process with transporttest.NewClusterOn on one real
// redis-server, behind a round-robin proxy with no stickiness.
package browsertest
