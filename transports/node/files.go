package node

import (
	"context"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/core/protocol"
	tfiles "github.com/chatd/chatd/transports/files"
)

var errFilesOff = protocol.Errorf(protocol.CodeFeatureDisabled,
	"file sharing is off for now (the server is under load, or the files flag is off for you); try again later")

// filesHandler serves the node's file uploads and downloads. Uploads are
// gated by the files feature (flag and level); downloads never are.
func (n *Node) filesHandler(svc *files.Service) *tfiles.Handler {
	var gate func(context.Context, auth.Identity) error
	if p := n.Policy; p != nil {
		gate = func(_ context.Context, who auth.Identity) error {
			if !p.FeatureOn(who.User, core.FeatureFiles) {
				return errFilesOff
			}
			return nil
		}
	}
	return tfiles.New(svc, tfiles.Config{Gate: gate})
}
