package httpx

import (
	"net/http/httptest"
	"testing"
)

func TestQueryValue(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{"rooms=a&level=2", "2"},
		{"level=1&level=2", "1"},
		{"levels=3&xlevel=4", ""},
		{"rooms=a%2Cb&cursor=xyz&level=%33", "3"},
		{"level=%zz", ""},
		{"", ""},
	} {
		if got := QueryValue(c.raw, "level"); got != c.want {
			t.Errorf("QueryValue(%q): %q, want %q", c.raw, got, c.want)
		}
	}
}

func TestBatched(t *testing.T) {
	for raw, want := range map[string]bool{"batch=1": true, "rooms=a&batch=1": true, "batch=0": false, "batch=": false, "": false, "batched=1": false} {
		if got := Batched(httptest.NewRequest("GET", "/v1/poll?"+raw, nil)); got != want {
			t.Errorf("Batched(%q) = %v, want %v", raw, got, want)
		}
	}
}
