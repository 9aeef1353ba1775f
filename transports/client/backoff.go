package client

import "time"

// backoff returns the delay before retry number n (0-based) with full
// jitter: a uniform draw from [0, min(max, base·2^n)]. int64n(k) must
// return a value in [0, k), like rand.Int64N.
func backoff(n int, base, max time.Duration, int64n func(int64) int64) time.Duration {
	limit := max
	if n < 0 {
		n = 0
	}
	if n < 63 && base > 0 {
		if d := base << n; d>>n == base && d > 0 && d < max {
			limit = d
		}
	}
	if limit <= 0 {
		return 0
	}
	return time.Duration(int64n(int64(limit) + 1))
}

// jitter returns a uniform draw from [0, max].
func (c *Client) jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(c.int64n(int64(max) + 1))
}

// backoff is the package backoff with the client's settings and source.
func (c *Client) backoff(n int) time.Duration {
	return backoff(n, c.cfg.BackoffBase, c.cfg.BackoffMax, c.int64n)
}

func (c *Client) int64n(k int64) int64 {
	c.rndMu.Lock()
	defer c.rndMu.Unlock()
	return c.cfg.Rand.Int64N(k)
}
