package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/featureflags"
)

// flagsRecord is key "flags" and topic "flags": the whole flag state, who
// wrote it and when, and the last file state shared.
type flagsRecord struct {
	Flags []featureflags.Flag `json:"flags"` // every known flag, in name order
	By    string              `json:"by"`
	At    time.Time           `json:"at"`
	Node  string              `json:"node"`
	File  string              `json:"file,omitempty"` // sum of the last file state shared (fileSum)
}

// fileState is a file reload waiting to be shared.
type fileState struct {
	flags []featureflags.Flag
	actor string
}

// The bridge is the admin API's flag writer and the flags file's target.
var (
	_ featureflags.Writer = (*bridge)(nil)
	_ featureflags.Target = (*bridge)(nil)
)

// Update implements featureflags.Writer: it changes one flag on every
// node, through the shared state. The error wraps ErrUnknownFlag or
// ErrInvalid, or is unavailable when the shared state cannot be written;
// then nothing changes anywhere.
func (b *bridge) Update(name string, enabled bool, rollout int, actor string) (featureflags.Flag, error) {
	f := featureflags.Flag{Name: name, Enabled: enabled, Rollout: rollout}
	if err := f.Validate(); err != nil {
		return featureflags.Flag{}, err
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	cur, err := b.readFlags(ctx)
	if err == nil {
		err = b.writeFlags(ctx, cur, flagsRecord{Flags: fullState(cur.Flags, f), By: actor, File: cur.File})
	}
	if err != nil {
		return featureflags.Flag{}, unavailable(err)
	}
	return f, nil
}

// Replace implements featureflags.Target for this node's flags file: the
// file's state goes to every node, unless it is the file state last
// shared (by any node), so that restarting a node, or touching its file,
// does not undo admin changes made since. When the shared state cannot be
// written, it fails and the state is shared at the next sync.
func (b *bridge) Replace(flags []featureflags.Flag, actor string) error {
	for _, f := range flags {
		if err := f.Validate(); err != nil {
			return err
		}
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := b.shareFile(ctx, fileState{flags: flags, actor: actor}); err != nil {
		b.retry = &fileState{flags: flags, actor: actor}
		return unavailable(err)
	}
	b.retry = nil
	return nil
}

// shareFile writes a file's state unless it is the one last shared.
// Called with writeMu held.
func (b *bridge) shareFile(ctx context.Context, fs fileState) error {
	state := fullState(fs.flags)
	sum := fileSum(state)
	cur, err := b.readFlags(ctx)
	if err != nil {
		return err
	}
	if cur.File == sum {
		b.applyFlags(cur)
		return nil
	}
	return b.writeFlags(ctx, cur, flagsRecord{Flags: state, By: fs.actor, File: sum})
}

// readFlags returns the shared flag state, or this node's when none is
// shared yet (its At is then zero).
func (b *bridge) readFlags(ctx context.Context) (flagsRecord, error) {
	rec, ok, err := b.loadFlags(ctx)
	if err != nil {
		return flagsRecord{}, err
	}
	if ok {
		return rec, nil
	}
	return flagsRecord{Flags: fullState(b.flags.Snapshot().All())}, nil
}

// loadFlags reads the shared flags. ok is false when there are none, or
// when what is there does not decode (logged; the next write replaces it).
func (b *bridge) loadFlags(ctx context.Context) (rec flagsRecord, ok bool, err error) {
	data, ok, err := b.be.Get(ctx, keyFlags)
	if err != nil || !ok {
		return flagsRecord{}, false, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		b.log.Warn("cluster: bad shared flags; the next write replaces them", "err", err)
		return flagsRecord{}, false, nil
	}
	return rec, true, nil
}

// writeFlags writes rec over cur, the state it was made from, applies it
// here, announces it and logs each flag it changes. rec's At and Node are
// filled in; At is after cur's, so every node takes rec as newer.
func (b *bridge) writeFlags(ctx context.Context, cur, rec flagsRecord) error {
	rec.Node, rec.At = b.self, time.Now()
	if !rec.At.After(cur.At) {
		rec.At = cur.At.Add(time.Nanosecond)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := b.be.Set(ctx, keyFlags, data); err != nil {
		return err
	}
	b.applyFlags(rec)
	b.hub.Announce(core.Control{Topic: topicFlags, Data: data})
	for _, c := range flagChanges(cur.Flags, rec) {
		entry, _ := json.Marshal(c)
		if err := b.be.LogPush(ctx, logFlags, entry, flagLogKeep); err != nil {
			b.log.Warn("cluster: flag change not logged", "err", err)
			break
		}
	}
	return nil
}

// applyFlags replaces this node's flags with a shared state newer than
// the one it holds (topic "flags", and the sync). Flags this node does not know (a newer node's) are
// left out, so a rolling upgrade does not stop the others' updates.
func (b *bridge) applyFlags(rec flagsRecord) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !rec.At.After(b.flagsAt) {
		return
	}
	known := make([]featureflags.Flag, 0, len(rec.Flags))
	for _, f := range rec.Flags {
		if _, ok := featureflags.Lookup(f.Name); ok {
			known = append(known, f)
		} else {
			b.log.Warn("cluster: shared flag unknown to this node; ignored", "flag", f.Name)
		}
	}
	if err := b.flags.Replace(known, rec.By); err != nil {
		b.log.Warn("cluster: shared flags not applied", "by", rec.By, "err", err)
		return
	}
	b.flagsAt = rec.At
}

// syncFlags shares a file state that could not be shared before, then
// applies the shared state if it is newer.
func (b *bridge) syncFlags(ctx context.Context) {
	b.writeMu.Lock()
	if fs := b.retry; fs != nil {
		if err := b.shareFile(ctx, *fs); err == nil {
			b.retry = nil
		}
	}
	b.writeMu.Unlock()
	if rec, ok, _ := b.loadFlags(ctx); ok {
		b.applyFlags(rec)
	}
}

// fullState returns every known flag, in name order: the defaults, with
// flags overlaid (later ones win). A flags file's state is the whole
// state, so two files that mean the same get the same sum.
func fullState(flags []featureflags.Flag, more ...featureflags.Flag) []featureflags.Flag {
	byName := map[string]featureflags.Flag{}
	for _, f := range featureflags.Defaults() {
		byName[f.Name] = f
	}
	for _, f := range append(append([]featureflags.Flag(nil), flags...), more...) {
		byName[f.Name] = f
	}
	out := make([]featureflags.Flag, 0, len(byName))
	for _, f := range byName {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// fileSum identifies a whole flag state (from fullState).
func fileSum(state []featureflags.Flag) string {
	data, _ := json.Marshal(state)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

// flagChanges lists the flags rec changes from old, as audit entries.
func flagChanges(old []featureflags.Flag, rec flagsRecord) []featureflags.Change {
	was := map[string]featureflags.Flag{}
	for _, f := range old {
		was[f.Name] = f
	}
	var out []featureflags.Change
	for _, f := range rec.Flags {
		if o, ok := was[f.Name]; !ok || o != f {
			out = append(out, featureflags.Change{Time: rec.At, Actor: rec.By, Name: f.Name, Old: o, New: f})
		}
	}
	return out
}

func unavailable(err error) error {
	return &protocol.Error{Code: protocol.CodeUnavailable, Message: "the shared flags cannot be written now; try again",
		Cause: fmt.Errorf("node: %w", err)}
}
