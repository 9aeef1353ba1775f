package node

import (
	"time"

	"github.com/chatd/chatd/degrade"
)

// autoReport is one node's auto level and when it last changed there.
type autoReport struct {
	Level degrade.Level `json:"level"`
	At    time.Time     `json:"at"`
}

// autoLevels holds the other live nodes' auto levels, the newest report
// per node: reports come both from the nodes' announcements and from the
// Info they keep with their lease, in no particular order.
type autoLevels map[string]autoReport

// report records r for node unless a later report is held.
func (a autoLevels) report(node string, r autoReport) {
	if cur, ok := a[node]; ok && r.At.Before(cur.At) {
		return
	}
	a[node] = r
}

// keepOnly forgets the nodes that are not live: a dead node's level stops
// counting.
func (a autoLevels) keepOnly(live map[string]bool) {
	for node := range a {
		if !live[node] {
			delete(a, node)
		}
	}
}

// floor returns the highest level held and who holds it, as SetFloor's
// by: "cluster:<node>" (the first id in order, on a tie), or "cluster"
// when no node asks for anything.
func (a autoLevels) floor() (degrade.Level, string) {
	top, by := degrade.LevelNormal, ""
	for node, r := range a {
		if r.Level > top || (r.Level == top && top > degrade.LevelNormal && node < by) {
			top, by = r.Level, node
		}
	}
	if by == "" {
		return top, "cluster"
	}
	return top, "cluster:" + by
}
