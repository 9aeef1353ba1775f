package core

import (
	"sync/atomic"

	"github.com/chatd/chatd/core/protocol"
)

// Engine is the seam between the hub and what keeps and carries messages:
// the embedded bbolt engine on one node, Redis across many. One value is
// the Store (history, seq, idempotency, read positions), the UserStore
// (display names, room lists) and the Broker (what the nodes that share
// the engine tell each other). New registers the hub with it, once.
type Engine interface {
	Store
	UserStore
	Broker
}

// Broker carries events between the nodes that share an engine. A single
// node's broker hands everything straight back to its own hub (see
// LocalBroker). Methods other than Register must not block: a networked
// broker queues and sends on its own goroutines.
type Broker interface {
	// Register sets the hub that receives what the broker delivers. New
	// calls it once, before any other method.
	Register(h Handler)

	// Subscribe says that this node has sessions in room and wants its
	// messages and ephemeral events; Unsubscribe that it has none left.
	// The hub calls Subscribe when a room's first local session joins and
	// Unsubscribe when the last one leaves. A broker that delivers every
	// room to every node may ignore them.
	Subscribe(room string)
	Unsubscribe(room string)

	// Broadcast sends an ephemeral envelope (presence, typing, receipt)
	// for room to every node subscribed to room, this one included. It is
	// at most once: an ephemeral event may be lost, never a message.
	Broadcast(room string, e protocol.Envelope)

	// Announce sends a control event to every node, this one included.
	Announce(c Control)
}

// Handler is what a Broker delivers to; *Hub is one.
type Handler interface {
	// Publish hands over committed messages, after they are durable, in
	// per-room seq order. A node that sees a gap (a lost publication)
	// catches up from the store; see Hub.Publish.
	Publish(msgs []protocol.Message)

	// Deliver hands over an ephemeral envelope for room from any node.
	Deliver(room string, e protocol.Envelope)

	// Control hands over a control event from any node.
	Control(c Control)
}

// Control is a cluster control event: a topic ("level", "flags", …) and
// an opaque payload that the topic's listener reads. The hub routes it to
// the listener registered with Hub.OnControl.
type Control struct {
	Topic string `json:"topic"`
	Data  []byte `json:"data,omitempty"`
}

// LocalBroker is the Broker of a single node: everything it is given goes
// straight back to the registered hub, on the caller's goroutine. The
// embedded engine embeds it and calls Publish after each commit. Its zero
// value is ready; before Register it drops what it is given.
type LocalBroker struct {
	h atomic.Pointer[Handler]
}

var _ Broker = (*LocalBroker)(nil)

// Register implements Broker.
func (b *LocalBroker) Register(h Handler) { b.h.Store(&h) }

// Subscribe implements Broker; one node needs no subscription.
func (b *LocalBroker) Subscribe(string) {}

// Unsubscribe implements Broker.
func (b *LocalBroker) Unsubscribe(string) {}

// Broadcast implements Broker.
func (b *LocalBroker) Broadcast(room string, e protocol.Envelope) {
	if h := b.h.Load(); h != nil {
		(*h).Deliver(room, e)
	}
}

// Announce implements Broker.
func (b *LocalBroker) Announce(c Control) {
	if h := b.h.Load(); h != nil {
		(*h).Control(c)
	}
}

// Publish hands committed messages to the registered hub. Engines call it
// after each commit.
func (b *LocalBroker) Publish(msgs []protocol.Message) {
	if h := b.h.Load(); h != nil {
		(*h).Publish(msgs)
	}
}

// Deliver implements Handler: it offers an ephemeral envelope from any
// node to this node's sessions in room. A typing event skips the typist's
// own sessions.
func (h *Hub) Deliver(room string, e protocol.Envelope) {
	r := h.lookupRoom(room)
	if r == nil {
		return
	}
	skip := ""
	if e.Type == protocol.TypeTyping {
		skip = e.User
	}
	r.broadcast(e, skip)
}

// Control implements Handler: it calls the listener registered for the
// event's topic, if any.
func (h *Hub) Control(c Control) {
	h.ctlMu.Lock()
	fn := h.controls[c.Topic]
	h.ctlMu.Unlock()
	if fn != nil {
		fn(c.Data)
	}
}

// OnControl registers fn for control events of topic, from every node
// (this one included); a later call for the same topic replaces it. fn
// runs on the broker's goroutine and must not block.
func (h *Hub) OnControl(topic string, fn func(data []byte)) {
	h.ctlMu.Lock()
	defer h.ctlMu.Unlock()
	h.controls[topic] = fn
}

// Announce sends a control event to every node through the engine.
func (h *Hub) Announce(c Control) { h.broker.Announce(c) }

var _ Handler = (*Hub)(nil)
