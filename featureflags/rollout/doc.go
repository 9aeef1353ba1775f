// Package rollout runs guarded progressive rollouts of feature flags: an
// operator starts a plan for a flag (say read_receipts, steps 10, 50, 100,
// a hold of 24h), and the Manager raises the flag's rollout one step after
// each hold while the users inside the rollout fare no worse than those
// outside, and rolls it back when they do.
//
// # Cohorts
//
// The server feeds a Meter with every user event: sessions opened and
// closed (with the close code), errors answered, and each live message
// delivered with its latency. For each flag with a plan in progress the
// Meter counts them per featureflags.Bucket of the user, so the Manager
// can split them at any percent: inside are the users whose bucket is at
// most the plan's percent (exactly those Flag.On lets in), outside the
// rest. Delivered runs once per delivery and costs one murmur3 hash and
// one atomic add per watched flag, no lock and no allocation: about 35 ns
// per watched flag on this project's 2-vCPU machine (BenchmarkMeterDelivered).
//
// # Stepping
//
// A plan starts at its first step, written to the flag at once (enabled,
// rollout = the step). Every tick (Config.Tick, 10s) the Manager compares
// the two cohorts over the last guard window (Plan.Window, 10 minutes by
// default and at most the hold; never reaching back before the step began,
// since the cohorts differed then). A step ends when its hold has passed
// and the guards have watched at least one full window at it (which
// matters only after a restart); the plan then moves to the next step.
// Reaching 100% ends the plan (done): nobody is left outside to compare
// with. A last step below 100 is held and watched like the others, then
// the plan is done.
//
// # Guards and halts
//
// Three guards compare inside with outside (see Guards for the units):
// errors per session, the share of abnormal disconnects (close codes
// other than 1000, 1001, 4001, 4012, 4013), and the p99 of delivery latency. A
// guard trips when the inside value is above Ratio times the outside value
// and above an absolute Floor. The defaults:
//
//	guard        ratio  floor                        samples per cohort
//	errors       2×     0.05 errors per session      50 sessions
//	disconnects  2×     2% of closes abnormal        50 closes
//	delivery     2×     p99 above 100 ms             500 deliveries
//
// A guard with fewer samples than that in either cohort neither trips nor
// holds the plan back: a quiet flag still rolls out on its holds, and
// Plan.Checks shows the guard as "waiting". When a guard trips, the plan
// halts: the flag goes back to the last good step (the highest that
// completed its hold; 0 before the first), the reason goes into the plan
// and into the flags audit log as the actor of the change, e.g.
// "rollout: halted at 50%: errors inside 12.0% vs outside 0.4% of sessions
// (guard errors); back to 10%", and chat_rollout_halts_total counts it. A
// fault that starts during a step therefore halts the plan within one
// window and one tick.
//
// Operators pause a running plan (the time paused does not count toward
// the hold; guards are judged and shown but act on nothing), resume it,
// resume a halted plan (it steps up at once to the step that tripped), or
// abort a plan in progress (the flag goes back to the last good step, or
// to 0 when asked). A flag has at most one plan in progress; a finished
// plan stays on show until the flag's next one. Changing the flag by hand
// during a plan is overwritten at the plan's next step: pause or abort it
// first.
//
// # Persistence and clusters
//
// Plans live in a PlanStore: FileStore keeps them in the data directory
// (rollouts.json, replaced atomically). Each operation and each tick loads
// the plans, changes them and saves them, so a restarted node, or another
// node of a cluster, carries on from the stored state. The windows are not
// stored: after a restart the guards watch a fresh window before the next
// step. On a cluster every node runs a Manager on the shared store and
// serves the admin operations; Config.Leader gates the stepping, so only
// the node holding the lease steps, halts and writes the flag on its own.
// That node judges on its own traffic, which, behind a balancer without
// stickiness, is a random sample of both cohorts: the sample counts take
// longer to reach, the comparison holds.
//
// # Metrics
//
// chat_rollout_percent{flag}, chat_rollout_state{flag,state} (1 for the
// plan's state) and chat_rollout_halts_total{flag,guard}.
//
// This package imports featureflags and nothing else of this module.
package rollout
