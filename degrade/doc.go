// Package degrade owns the degradation level (0–3) and what it means for
// each user: which transports are offered and which features are on.
//
// The level is set by an operator (manual mode, optionally for a limited
// time) or by the controller (auto mode), which feeds load signals into
// sony/gobreaker breakers. Each signal names the level that relieves it:
// too many events to fan out is relieved by turning receipts and typing
// off (1); WebSocket write trouble by moving clients to SSE (2); too many
// held connections, or too much memory, by short polling (3). The
// connections and heap thresholds default to figures derived from the
// process's open-files limit and memory (Limits, SystemCapacity). The
// level is the highest relief any open breaker asks for. A signal may
// name a second, higher level for when its relief does not relieve: if it
// stays bad for Config.EscalateAfter readings after its breaker tripped,
// the breaker asks for that level until it closes (delivery latency goes
// from 1 to 3 when messages alone are more than the node can fan out).
// Escalation is off unless EscalateAfter is set: moving 10k streaming
// clients to short polling at once cost more than it relieved.
// A breaker trips after Config.TripAfter bad readings in a row, or at
// once, for a signal marked AtOnce (delivery latency), on a reading
// Config.TripAtOnce times its threshold. A tripped breaker
// holds its level for the breaker timeout, then goes half-open and the
// level steps down one level; healthy probes close the breaker and the
// next step down follows after StepDown, so the level returns one step at
// a time. A signal marked Headroom (one whose relief saves CPU) holds its
// probe while the node is busy (Config.Busy at or over ProbeBusy) or the
// signal is still over its threshold, for at most ProbeWait: a probe the
// node cannot afford fails within seconds and leaves a backlog, and one
// that fails at once holds the relief a whole breaker timeout more.
//
// On several nodes the level is cluster-wide (cluster.go): an operator's
// decision is a Pin that every node applies (ApplyPin, the later decision
// winning), and in auto mode each node's floor is the highest auto level
// of the other live nodes (SetFloor), so the level in force is the most
// loaded node's everywhere. A bridge outside this package carries them;
// the changes it applies are marked Remote.
//
// Live moves: when the level changes, every open session is sent a control
// envelope at a random moment within the move window, and sessions whose
// transport is no longer offered are then closed with 4001, so clients do
// not reconnect all at once. A session has at most one move pending: a
// newer change replaces it, and the session's end drops it.
//
// It imports core and featureflags, never transports.
package degrade
