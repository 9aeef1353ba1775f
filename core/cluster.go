package core

import (
	"context"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// Cluster is what an engine shared by several nodes adds to Engine: the
// state that must hold across the nodes rather than per node. The hub
// uses it when its engine has it (a type assertion in New); the embedded
// engine, on one node, does not, and the hub keeps that state itself.
//
// Every method may fail when the backend is unreachable; the error is
// then a *protocol.Error with CodeUnavailable. Methods must return within
// a bounded time (the engine's own timeout), since the hub calls them on
// request paths.
type Cluster interface {
	// Presence records this node's net presence changes in room (a user
	// came online here, or has no session left here) and returns those
	// that changed the user's state across the cluster: online on their
	// first node, offline when their last node lets go. It also returns
	// how many users are online in room across the cluster. The hub
	// broadcasts what it returns. On an error the engine still keeps
	// the changes as this node's state and applies them (and announces
	// what they change) once the backend answers; the hub does not
	// retry.
	Presence(ctx context.Context, room string, changes []PresenceChange) (changed []PresenceChange, online int, err error)

	// Members lists the users online in room on every live node.
	Members(ctx context.Context, room string) ([]Member, error)

	// AcquireConn counts one more connection of user across the cluster
	// unless limit are already open, and reports whether it did. Every
	// true answer is matched by one ReleaseConn. A node's counts go when
	// its lease ends.
	AcquireConn(ctx context.Context, user string, limit int) (ok bool, open int, err error)
	ReleaseConn(user string)

	// AllowSend takes one token from user's send bucket, shared by every
	// node: perSec tokens a second, up to burst. It reports whether one
	// was there.
	AllowSend(ctx context.Context, user string, perSec float64, burst int) (bool, error)
}

// PresenceChange is one user going online or offline in a room.
type PresenceChange = protocol.PresenceChange

// clusterTimeout bounds the hub's calls to a Cluster on request paths.
const clusterTimeout = 2 * time.Second
