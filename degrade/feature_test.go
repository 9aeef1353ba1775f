package degrade

import (
	"testing"

	"github.com/chatd/chatd/core"
)

// Level 1 turns off the optional costs: receipts, typing and compression;
// presence stays. Level 0 leaves each to its flag.
func TestFeaturesByLevel(t *testing.T) {
	for _, c := range []struct {
		level   Level
		feature string
		want    bool
	}{
		{LevelNormal, core.FeatureCompression, true},
		{LevelNoReceipts, core.FeatureCompression, false},
		{LevelNoReceipts, core.FeatureReadReceipts, false},
		{LevelNoReceipts, core.FeatureTyping, false},
		{LevelNoReceipts, core.FeaturePresence, true},
		{LevelPoll, core.FeatureCompression, false},
	} {
		if got := FeatureOn(c.level, nil, "u", c.feature); got != c.want {
			t.Errorf("level %d, %s: %v, want %v", c.level, c.feature, got, c.want)
		}
	}
}
