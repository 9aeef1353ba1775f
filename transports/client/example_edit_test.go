package client_test

import (
	"context"
	"fmt"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/client"
)

// ExampleClient_Edit sends a message, fixes it and deletes it. Each
// operation is an entry of the room's log with a seq of its own, and
// arrives on Events like a message.
func ExampleClient_Edit() {
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
	for s := range c.States() {
		if s.Connected {
			break
		}
	}

	sent, err := c.Send(ctx, "lobby", "helo")
	if err != nil {
		fmt.Println("send:", err)
		return
	}
	if _, err := c.Edit(ctx, "lobby", sent.Seq, "hello"); err != nil {
		fmt.Println("edit:", err)
		return
	}
	if _, err := c.Delete(ctx, "lobby", sent.Seq); err != nil {
		fmt.Println("delete:", err)
		return
	}
	for e := range c.Events() {
		switch e.Type {
		case protocol.TypeMessage:
			fmt.Printf("#%d message: %s\n", e.Seq, e.Text)
		case protocol.TypeEdit:
			fmt.Printf("#%d edit of #%d: %s\n", e.Seq, e.Target, e.Text)
		case protocol.TypeDelete:
			fmt.Printf("#%d delete of #%d\n", e.Seq, e.Target)
			return
		}
	}
	// Output:
	// #1 message: helo
	// #2 edit of #1: hello
	// #3 delete of #1
}
