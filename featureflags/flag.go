package featureflags

import (
	"errors"
	"fmt"
	"sort"
)

// Errors returned by validation. They are wrapped with the flag name, so
// test with errors.Is. The HTTP layer maps ErrUnknownFlag to not_found and
// ErrInvalid to bad_request.
var (
	ErrUnknownFlag = errors.New("featureflags: unknown flag")
	ErrInvalid     = errors.New("featureflags: invalid flag value")
)

// Flag is the state of one flag. Rollout is the percentage of users, 0–100,
// who get the feature while Enabled is true.
type Flag struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Rollout int    `json:"rollout"`
}

// Validate reports whether f names a known flag and holds a value that flag
// accepts. The error wraps ErrUnknownFlag or ErrInvalid.
func (f Flag) Validate() error {
	d, ok := byName[f.Name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownFlag, f.Name)
	}
	if f.Rollout < 0 || f.Rollout > 100 {
		return fmt.Errorf("%w: %s: rollout %d is outside 0–100", ErrInvalid, f.Name, f.Rollout)
	}
	if d.Floor && (!f.Enabled || f.Rollout != 100) {
		return fmt.Errorf("%w: %s is the floor and cannot be turned down", ErrInvalid, f.Name)
	}
	return nil
}

// On reports whether user gets this flag's feature: the flag is enabled,
// its rollout is above zero and the user's bucket is within the rollout.
func (f Flag) On(user string) bool {
	switch {
	case !f.Enabled || f.Rollout <= 0:
		return false
	case f.Rollout >= 100:
		return true // every bucket is at most 100; skip the hash
	}
	return Bucket(f.Name, user) <= f.Rollout
}

// Set is an immutable snapshot of every known flag. It is safe for
// concurrent use; a change makes a new Set.
type Set struct {
	flags map[string]Flag // never written after newSet
}

// newSet builds a Set from already validated flags: the defaults overlaid
// with flags.
func newSet(flags []Flag) *Set {
	m := make(map[string]Flag, len(registry))
	for _, d := range registry {
		m[d.Name] = d.Default()
	}
	for _, f := range flags {
		m[f.Name] = f
	}
	return &Set{flags: m}
}

// with returns a copy of s with f set.
func (s *Set) with(f Flag) *Set {
	m := make(map[string]Flag, len(s.flags))
	for k, v := range s.flags {
		m[k] = v
	}
	m[f.Name] = f
	return &Set{flags: m}
}

// On reports whether user gets the feature behind the flag name. An unknown
// name is off. It does not lock or allocate.
func (s *Set) On(name, user string) bool {
	f, ok := s.flags[name]
	return ok && f.On(user)
}

// Get returns the state of the flag name.
func (s *Set) Get(name string) (Flag, bool) {
	f, ok := s.flags[name]
	return f, ok
}

// All returns every flag, sorted by name.
func (s *Set) All() []Flag {
	out := make([]Flag, 0, len(s.flags))
	for _, f := range s.flags {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
