// Package featureflags owns the feature-flag registry, per-user rollout
// evaluation, the in-memory store with its audit log, and the file source
// that reloads flags when their file changes.
//
// The names the server knows are declared once, in registry.go, each with a
// default and the reason it exists. A flag has a name, Enabled and Rollout
// (0–100, the percentage of users). A user is in when the flag is enabled,
// its rollout is above zero and Bucket(name, user) is at most the rollout.
// Bucketing is the one Unleash users know (murmur3 of "<flag>:<user>", mod
// 100, plus 1), so it is sticky: raising the rollout only ever adds users.
//
// Hot paths call Store.Snapshot, an atomic load of an immutable Set, and
// then Set.On; neither locks nor allocates. Writers (the admin API through
// Store.Update, the file or a cluster source through Store.Replace) build a
// new Set, swap it in, record each change in the audit log, log it with
// slog, and wake subscribers.
//
// Flags are the upper bound of what a user gets. A degradation level may
// switch a feature off on top of them, never on; that rule lives with the
// level (package degrade), not here.
//
// This package is a leaf: it must not import any other package of this
// module. Others import it.
package featureflags
