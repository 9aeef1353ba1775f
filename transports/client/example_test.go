package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/bolt"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/client"
	"github.com/chatd/chatd/transports/node"
)

// Example connects as alice, sends a message and reads it back.
func Example() {
	url, issue, stop := exampleServer()
	defer stop()

	c := client.New(client.Config{
		URL:   url,
		Token: func(context.Context) (string, error) { return issue("alice") },
		Rooms: []string{"lobby"},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// A room joined for the first time starts live: wait until it is.
	for s := range c.States() {
		if s.Connected {
			fmt.Println("connected over", s.Transport)
			break
		}
	}
	ack, err := c.Send(ctx, "lobby", "hello")
	if err != nil {
		fmt.Println("send:", err)
		return
	}
	fmt.Println("acked as seq", ack.Seq)
	for e := range c.Events() {
		if e.Type == protocol.TypeMessage {
			fmt.Printf("%s #%d: %s\n", e.Name, e.Seq, e.Text)
			break
		}
	}
	// Output:
	// connected over websocket
	// acked as seq 1
	// alice #1: hello
}

// Example_userEvents signs in as Zoë, who follows no room: the first
// message Bob sends her arrives as a user event, and her room list shows
// the conversation.
func Example_userEvents() {
	url, issue, stop := exampleServer()
	defer stop()

	zoe := client.New(client.Config{
		URL:        url,
		Token:      func(context.Context) (string, error) { return issue("Zoë Smith") },
		UserEvents: true,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- zoe.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for s := range zoe.States() {
		if s.Connected {
			break
		}
	}
	me, err := zoe.Me(ctx)
	if err != nil {
		fmt.Println("me:", err)
		return
	}
	fmt.Println("signed in as", me.Name)

	bob := client.New(client.Config{URL: url, Token: func(context.Context) (string, error) { return issue("bob") }})
	if _, err := bob.Send(ctx, auth.DMRoom("bob", me.User), "hi Zoë"); err != nil {
		fmt.Println("send:", err)
		return
	}
	for e := range zoe.Events() {
		if e.Type == protocol.TypeRoom {
			fmt.Printf("%s: %s with %s\n", e.Reason, e.Room[:7], e.DM.User)
			break
		}
	}
	rooms, err := zoe.ListRooms(ctx)
	if err != nil {
		fmt.Println("rooms:", err)
		return
	}
	for _, r := range rooms {
		fmt.Printf("%d unread from %s: %s\n", r.Unread, r.DM.Name, r.Last.Text)
	}
	// Output:
	// signed in as Zoë Smith
	// dm: dm:bob: with bob
	// 1 unread from bob: hi Zoë
}

// exampleServer starts a chatd server in dev mode on loopback and returns
// its URL, a function that issues dev tokens, and a stop function.
func exampleServer() (string, func(name string) (string, error), func()) {
	dir, err := os.MkdirTemp("", "chatd-example")
	if err != nil {
		panic(err)
	}
	log := slog.New(slog.DiscardHandler)
	verifier, err := auth.NewVerifier(auth.Config{}) // dev mode
	if err != nil {
		panic(err)
	}
	tickets := auth.NewTickets(nil, 0, nil)
	store, err := bolt.Open(bolt.Config{Path: filepath.Join(dir, "chat.db"), Logger: log})
	if err != nil {
		panic(err)
	}
	n := node.New(node.Config{Engine: store, Verifier: verifier, Tickets: tickets, Logger: log})
	api := n.API
	api.SetReady(true)
	srv := httptest.NewServer(api.Handler())
	issue := func(name string) (string, error) { return verifier.IssueDev(name, false, time.Hour) }
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
		srv.Close()
		_ = store.Close()
		_ = os.RemoveAll(dir)
	}
	return srv.URL, issue, stop
}
