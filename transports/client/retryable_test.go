package client

import "testing"

// TestRetryableStatuses: an HTTP answer without a code is retried where
// its status says nothing of the request itself: a server error, 429, 408,
// and 499 (the server took the client for gone); not another 4xx.
func TestRetryableStatuses(t *testing.T) {
	for status, want := range map[int]bool{499: true, 500: true, 502: true, 503: true, 429: true, 408: true,
		400: false, 403: false, 404: false, 409: false, 413: false} {
		if got, _ := retryable(&ServerError{Status: status}); got != want {
			t.Errorf("status %d: retryable %v, want %v", status, got, want)
		}
	}
}
