// Package protocol defines the wire vocabulary shared by every transport:
// envelopes, error codes, close codes, and the codec that reads and writes
// them.
//
// It owns the frame table below and nothing else. It imports only the
// standard library and golang.org/x/text/unicode/norm (display names are
// NFC-normalised); core, transports and clients all depend on it.
//
// Client to server:
//
//	join     {"type":"join","room","since"?}        since = last seq seen; room "~": the user's own stream
//	leave    {"type":"leave","room"}
//	send     {"type":"send","room","id","text","files"?}  files = up to 10 file ids
//	edit     {"type":"edit","room","id","seq","text"}      seq = the message's
//	delete   {"type":"delete","room","id","seq"}
//	read     {"type":"read","room","seq"}
//	typing   {"type":"typing","room"}
//	ping     {"type":"ping"}
//	pong     {"type":"pong"}                         answer to a server ping
//	refresh  {"type":"refresh","token"}
//
// Server to client:
//
//	joined     {"type":"joined","room","head","recovered"}
//	message    {"type":"message","room","seq","id","from","name","text","ts","files"?,"edited"?,"deleted"?}
//	edit       {"type":"edit","room","seq","id","target","text","from","name","ts","deleted"?}
//	delete     {"type":"delete","room","seq","id","target","from","name","ts"}
//	ack        {"type":"ack","id","room","seq","ts"}
//	receipt    {"type":"receipt","room","user","seq"}
//	presence   {"type":"presence","room","user","name","online"}
//	typing     {"type":"typing","room","user","name"}
//	control    {"type":"control","level","transports","features","poll_interval_ms"}
//	error      {"type":"error","code","message","ref"}
//	ping       {"type":"ping"}                        heartbeat
//	pong       {"type":"pong"}
//	disconnect {"type":"disconnect","close_code","reason","reconnect_ms"}
//	room       {"type":"room","room","reason","seq","ts","dm"?}  user-scoped; its position is "~"
//
// Version log:
//
//	v1  the contract's frames, plus server ping, client pong, disconnect,
//	    and ref on every reply.
//	v1.1 names: room names (ValidRoom) and user ids (ValidUser) hold only
//	    printable runes (NameRune): no space, control, format (Cf),
//	    bidi-control or other invisible rune, so gen\u200beral and
//	    \u202egeneral are bad_request. A user id is 1 to MaxUserLen (128)
//	    bytes. Message text (CleanText) keeps format and bidi runes.
//	v1.1 edit and delete: each is an entry of the room's log with a seq
//	    of its own (target names the message), acked like a send and
//	    idempotent by its own id; a message read back (history, replay)
//	    carries its current text and edited, or deleted with no text and
//	    no files, and so does an edit of a deleted message. Attachments:
//	    a send's files are ids (File, bare), a message's are objects.
//	v1.2 your rooms, your name: room names may not start with '~'; "~"
//	    (UserRoom) is the user's own stream of "room" envelopes (reason
//	    dm, invite, joined or left; dm carries the other user as
//	    {"user","name"}), followed by every session without a join and
//	    resumed by a join of "~" with since or by the cursor key "~".
//	    Display names (CleanDisplayName) are NFC, trimmed, 1 to 64
//	    characters of name runes or space separators.
package protocol
