package client

import (
	"errors"
	"io"
	"mime"
	"net/http"
)

// errStreamEnded means the server ended an event stream without saying why.
var errStreamEnded = errors.New("client: event stream ended")

// runSSE opens GET /v1/sse for the rooms, resuming each from its position
// with since= (and the user's own stream with cursor=, under
// Config.UserEvents), and reads events until the stream ends. It is the link's
// reader goroutine. A change to the rooms restarts the link.
func (l *link) runSSE() {
	c := l.c
	rooms, since := c.subscribe(l)
	if len(rooms) == 0 && !c.cfg.UserEvents {
		l.idle.Store(true) // nothing to stream; wait for a Join
		l.markUp()
		<-l.ctx.Done()
		return
	}
	req, err := http.NewRequestWithContext(l.ctx, http.MethodGet,
		c.base+"/v1/sse?"+subscriptionQuery(rooms, since)+"&"+batchQuery, nil)
	if err != nil {
		l.end.err = err
		return
	}
	// The token in a header, as on a WebSocket (runWS): a stream opened
	// with a ticket ends with it.
	req.Header = bearer(l.tok)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := c.http.Do(req)
	if err != nil {
		l.end.err = err
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		l.end.err = serverError(resp)
		return
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		l.end.err = errors.New("client: /v1/sse answered " + mt + ", not an event stream")
		return
	}
	er := newEventReader(resp.Body, l.touch)
	var scratch frameScratch
	opts := c.decodeOptions() // static: the Config's
	for {
		ev, err := er.next()
		if err != nil {
			if l.end.code == 0 && l.end.err == nil {
				if errors.Is(err, io.EOF) {
					err = errStreamEnded
				}
				l.end.err = err
			}
			return
		}
		envs, err := scratch.decode(ev.data, opts)
		if err != nil {
			c.cfg.Logger.Debug("chat client: bad event", "err", err)
			continue
		}
		for _, e := range envs {
			l.markUp()
			c.handle(l, e)
		}
		scratch.done(envs)
		if l.end.code != 0 {
			return // a disconnect envelope is the stream's last word
		}
	}
}
