package browsertest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatd/chatd/transports/client"
)

// TestOpsPageFollowsTheServer: after the page pins level 2, a level set
// elsewhere (chatctl, another operator) replaces the page's "Pinned level
// 2" with the level in force and who set it. At level 3 a chat tab that
// polls counts as a poll connection between its polls, its sends' round
// trips reach the round trip figure, a REST error shows under its code,
// and the real binary reports its anonymous RSS. With 19 Go poll clients
// more, the page counts 20 poll connections.
func TestOpsPageFollowsTheServer(t *testing.T) {
	srv := startServer(t)
	ops := newUser(t).open("ops", srv.URL()+"/ops.html", tabOptions{preScript: quickOps})
	ops.opsLogin("ops")
	ops.do(chromedp.Click(chromedp.ID("pin-2")), chromedp.Click(chromedp.ID("pin-go")))
	ops.waitJS("the page's own pin", `document.getElementById('level').getAttribute('data-level') === '2' &&
	  /Pinned level 2/.test(document.getElementById('level-msg').textContent)`, 10*time.Second)

	srv.loginAdmin(t, "chatctl").setLevel(3) // as chatctl level set 3 does
	ops.waitJS("level 3 from the server, said as such", `document.getElementById('level').getAttribute('data-level') === '3' &&
	  !/Pinned level 2/.test(document.getElementById('level-msg').textContent) &&
	  /Now level 3 \(manual\), set by admin:chatctl/.test(document.getElementById('level-msg').textContent) &&
	  document.getElementById('pin-3').checked`, 10*time.Second)

	carol := newUser(t).open("carol", srv.URL(), tabOptions{})
	carol.login("carol")
	carol.waitConnected("poll")
	// At level 3 the page polls every 5 s; it is a connection all along.
	ops.waitJS("carol's poll client", `+document.getElementById('conn-poll').textContent === 1`, 10*time.Second)
	// 19 more poll clients, Go ones: the page shows all 20, between polls too.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := range 19 {
		tok := srv.login(t, fmt.Sprint("poller", i)).token
		c := client.New(client.Config{URL: srv.URL(), Rooms: []string{"general"}, Transports: []string{client.Poll},
			Token: func(context.Context) (string, error) { return tok, nil }})
		wg.Go(func() { _ = c.Run(ctx) })
	}
	ops.waitJS("20 poll clients", `+document.getElementById('conn-poll').textContent === 20`, 20*time.Second)
	carol.send("one")
	carol.waitText("one")
	carol.send("two") // its POST reports the first one's round trip
	carol.waitText("two")
	ops.waitJS("a client round trip", `document.querySelector('#alerts li[data-alert="rtt"]').getAttribute('data-state') !== 'none' &&
	  /\d+ ms/.test(document.querySelector('#alerts li[data-alert="rtt"] .alert-value').textContent)`, 10*time.Second)

	req, _ := http.NewRequest("POST", srv.URL()+"/v1/send", strings.NewReader("{"))
	req.Header.Set("Authorization", "Bearer "+srv.login(t, "mallory").token)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	ops.waitJS("the bad request by code", `!!document.querySelector('#errors li[data-code="bad_request"]')`, 10*time.Second)
	ops.waitJS("the memory figure", `/anonymous RSS \d/.test(document.querySelector('#alerts li[data-alert="memory"]').textContent)`, 5*time.Second)
	ops.checkCSP()

	rss := srv.metric(t, "chat_process_anon_rss_bytes")
	if rss < 1<<20 {
		t.Fatalf("chat_process_anon_rss_bytes = %v from the running chatd, want its anonymous memory (over 1 MiB)", rss)
	}
}
