package featureflags

// The flag names of the public contract, plus the poll floor. Use these
// constants rather than string literals so a typo fails to compile.
const (
	WebSocket    = "transport.websocket"
	SSE          = "transport.sse"
	Poll         = "transport.poll"
	ReadReceipts = "read_receipts"
	Typing       = "typing"
	Presence     = "presence"
	Compression  = "compression"
	Files        = "files"
)

// Definition is one entry of the registry: a flag the server knows, its
// default state and why it exists.
type Definition struct {
	Name    string
	Enabled bool   // default
	Rollout int    // default, 0–100
	Reason  string // one line: why the flag exists

	// Floor marks a flag that can never be off for anyone. Setting it
	// disabled or below 100 fails with ErrInvalid. It is listed so that
	// callers can ask every transport the same way.
	Floor bool
}

// registry is the one list of known flags. Add a flag here, and only here.
// Static: never modified after init.
var registry = []Definition{
	{Name: WebSocket, Enabled: true, Rollout: 100,
		Reason: "offer the WebSocket transport; turn down to push users to SSE or poll"},
	{Name: SSE, Enabled: true, Rollout: 100,
		Reason: "offer the SSE transport; turn down to push users to poll"},
	{Name: Poll, Enabled: true, Rollout: 100, Floor: true,
		Reason: "offer long-poll; always on, it is the floor every client can fall back to"},
	{Name: ReadReceipts, Enabled: true, Rollout: 100,
		Reason: "fan out read receipts; costly in large rooms"},
	{Name: Typing, Enabled: true, Rollout: 100,
		Reason: "fan out typing indicators; the chattiest ephemeral event"},
	{Name: Presence, Enabled: true, Rollout: 100,
		Reason: "track and fan out online/offline presence"},
	{Name: Compression, Enabled: true, Rollout: 100,
		Reason: "compress what is sent (permessage-deflate, gzip) when the client accepts it; costs CPU, so level 1 turns it off"},
	{Name: Files, Enabled: true, Rollout: 100,
		Reason: "accept file and image uploads; the costliest thing a user does, so level 2 turns it off"},
}

// byName indexes registry. Static after init.
var byName = func() map[string]Definition {
	m := make(map[string]Definition, len(registry))
	for _, d := range registry {
		m[d.Name] = d
	}
	return m
}()

// defaultSet holds every flag at its default. Static after init.
var defaultSet = newSet(Defaults())

// Definitions returns the registry, in declaration order.
func Definitions() []Definition {
	return append([]Definition(nil), registry...)
}

// Lookup returns the registry entry for name.
func Lookup(name string) (Definition, bool) {
	d, ok := byName[name]
	return d, ok
}

// Defaults returns every known flag at its default state, in registry order.
func Defaults() []Flag {
	out := make([]Flag, len(registry))
	for i, d := range registry {
		out[i] = d.Default()
	}
	return out
}

// Default returns the flag's default state.
func (d Definition) Default() Flag {
	return Flag{Name: d.Name, Enabled: d.Enabled, Rollout: d.Rollout}
}
