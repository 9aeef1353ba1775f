package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// maxEventLine bounds one line of an event stream, and maxEventData one
// event's data; a longer line or event ends the stream.
const (
	maxEventLine = maxFrame
	maxEventData = maxFrame
)

var errLineTooLong = errors.New("client: event stream line too long")

// event is one dispatched Server-Sent Event.
type event struct {
	id    string // the last event id, as of this event
	name  string // the event: field; "" means message
	data  []byte // the data lines joined by newlines
	retry int    // the last retry: hint in ms, 0 if none was sent
}

// eventReader parses a text/event-stream as the HTML standard describes:
// lines end in LF, CRLF or CR; "field: value" lines set id, data, event
// and retry; lines starting with ':' are comments; a blank line
// dispatches the event when it has data. An event cut off by EOF is
// dropped.
type eventReader struct {
	r       *bufio.Reader
	onLine  func() // called for every line read, comments included
	lastID  string // persists across events, as in a browser
	retry   int
	skipLF  bool // the previous line ended in CR; a following LF belongs to it
	lineBuf []byte
	dataBuf []byte // the data of the event being built
	hasData bool
	name    string
}

func newEventReader(r io.Reader, onLine func()) *eventReader {
	if onLine == nil {
		onLine = func() {}
	}
	return &eventReader{r: bufio.NewReaderSize(r, 4096), onLine: onLine}
}

// next returns the next event with data.
func (er *eventReader) next() (event, error) {
	for {
		line, err := er.readLine()
		if err != nil {
			return event{}, err
		}
		er.onLine()
		if len(line) == 0 {
			if ev, ok := er.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			continue // comment: a heartbeat for proxies
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		if err := er.field(string(field), value); err != nil {
			return event{}, err
		}
	}
}

func (er *eventReader) field(name string, value []byte) error {
	switch name {
	case "data":
		if len(er.dataBuf)+len(value)+1 > maxEventData {
			return errLineTooLong
		}
		if er.hasData {
			er.dataBuf = append(er.dataBuf, '\n')
		}
		er.dataBuf = append(er.dataBuf, value...)
		er.hasData = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			er.lastID = string(value)
		}
	case "event":
		er.name = string(value)
	case "retry":
		if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 {
			er.retry = n
		}
	}
	return nil
}

// dispatch ends the event being built, returning it if it had data.
func (er *eventReader) dispatch() (event, bool) {
	defer func() {
		er.dataBuf, er.hasData, er.name = er.dataBuf[:0], false, ""
	}()
	if !er.hasData {
		return event{}, false
	}
	return event{id: er.lastID, name: er.name, data: bytes.Clone(er.dataBuf), retry: er.retry}, true
}

// readLine returns the next line without its terminator.
func (er *eventReader) readLine() ([]byte, error) {
	er.lineBuf = er.lineBuf[:0]
	for {
		b, err := er.r.ReadByte()
		if err != nil {
			if err == io.EOF && len(er.lineBuf) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if er.skipLF {
			er.skipLF = false
			if b == '\n' {
				continue
			}
		}
		switch b {
		case '\n':
			return er.lineBuf, nil
		case '\r':
			er.skipLF = true
			return er.lineBuf, nil
		}
		if len(er.lineBuf) >= maxEventLine {
			return nil, errLineTooLong
		}
		er.lineBuf = append(er.lineBuf, b)
	}
}
