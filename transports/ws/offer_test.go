package ws

import (
	"net/http"
	"testing"
)

// The first permessage-deflate offer decides: takeover unless it asks for
// server_no_context_takeover or bounds the server's window.
func TestDeflateOffer(t *testing.T) {
	for _, tc := range []struct {
		header            string
		offered, takeover bool
	}{
		{"", false, false},
		{"x-webkit-deflate-frame", false, false},
		{"permessage-deflate", true, true},
		{"permessage-deflate; client_max_window_bits", true, true},                                  // Chromium, Firefox
		{"permessage-deflate; client_max_window_bits=15", true, true},                               // a client that names its own
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", true, false}, // gorilla
		{"permessage-deflate; server_max_window_bits=10", true, false},
		{"permessage-deflate; SERVER_NO_CONTEXT_TAKEOVER", true, false},
		{"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", true, true},
		{"permessage-deflate; server_no_context_takeover, permessage-deflate", true, false}, // the first offer
	} {
		r := &http.Request{Header: http.Header{}}
		if tc.header != "" {
			r.Header.Set("Sec-WebSocket-Extensions", tc.header)
		}
		offered, takeover := deflateOffer(r)
		if offered != tc.offered || takeover != tc.takeover {
			t.Errorf("%q: offered %v, takeover %v; want %v, %v", tc.header, offered, takeover, tc.offered, tc.takeover)
		}
	}
}

// Whatever the header, reading it ends, and takeover implies an offer.
func FuzzDeflateOffer(f *testing.F) {
	f.Add("permessage-deflate; client_max_window_bits")
	f.Add("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
	f.Add(",;=,permessage-deflate;;server_max_window_bits=")
	f.Fuzz(func(t *testing.T, header string) {
		r := &http.Request{Header: http.Header{"Sec-Websocket-Extensions": {header}}}
		if offered, takeover := deflateOffer(r); takeover && !offered {
			t.Fatalf("%q: takeover without an offer", header)
		}
	})
}
