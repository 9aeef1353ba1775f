package featureflags

// The contract makes flags cluster-wide. Today the state lives in each
// node's Store, fed by the file and the admin API. A cluster-wide backend
// (Redis) plugs in through these two interfaces without changing this
// package:
//
//   - it receives every node's pushes and calls Target.Replace on the local
//     Store with the whole state, as FileSource does on reload;
//   - it implements Writer itself, so the admin API writes to the shared
//     state (which then comes back to every node through Replace) instead of
//     to one node's Store.
//
// The admin API should therefore depend on Writer and a Snapshot func, not
// on *Store.
//
// transports/node's cluster bridge is that backend. It is also the Target
// of a node's FileSource on a cluster: a reload pushes the file's state to
// every node, unless that state is the file state last pushed by any node,
// so that restarting a node with the same file does not undo admin changes
// made since; editing the file on any node changes every node.

// Target receives whole flag states from a source. *Store implements it.
type Target interface {
	Replace(flags []Flag, actor string) error
}

// Writer changes one flag on behalf of an actor. *Store implements it.
type Writer interface {
	Update(name string, enabled bool, rollout int, actor string) (Flag, error)
}
