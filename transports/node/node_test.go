package node_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/bolt"
	"github.com/chatd/chatd/transports/httpapi"
	"github.com/chatd/chatd/transports/node"
)

const secret = "node-test-secret-0123456789abcdef"

// testNode is one node served over HTTP; it stops when the test ends.
type testNode struct {
	*node.Node
	url string
}

// startNode builds a node with degradation over engine, shared with
// other nodes through cluster when it is not nil.
func startNode(t *testing.T, engine core.Engine, cluster node.Backend, info httpapi.Node) *testNode {
	t.Helper()
	return startNodeWith(t, node.Config{Engine: engine, Degrade: true, Cluster: cluster, Info: info})
}

// startNodeWith builds a node from cfg, its Verifier, Tickets and Logger
// filled in.
func startNodeWith(t *testing.T, cfg node.Config) *testNode {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{HMACSecret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Verifier, cfg.Tickets, cfg.Logger = v, auth.NewTickets(nil, time.Minute, nil), slog.New(slog.DiscardHandler)
	n := node.New(cfg)
	n.API.SetReady(true)
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("node close: %v", err)
		}
		srv.Close()
	})
	return &testNode{Node: n, url: srv.URL}
}

func boltEngine(t *testing.T) *bolt.Store {
	t.Helper()
	store, err := bolt.Open(bolt.Config{Path: filepath.Join(t.TempDir(), "chat.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// call sends an admin request and decodes the answer into out (if not
// nil); it returns the status.
func (n *testNode) call(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "ops", "admin": true, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, n.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

// adminStatus is the part of GET /v1/admin/status the tests read.
type adminStatus struct {
	Level   int                   `json:"level"`
	Mode    string                `json:"mode"`
	Until   *time.Time            `json:"until"`
	Nodes   []httpapi.NodeStatus  `json:"nodes"`
	History []httpapi.LevelChange `json:"history"`
	Cluster string                `json:"cluster_error"`
}

// TestAdminStatusOneNode: without a cluster, the node list is this node,
// with its identity and what it reports of itself.
func TestAdminStatusOneNode(t *testing.T) {
	started := time.Now().Truncate(time.Second)
	n := startNode(t, boltEngine(t), nil, httpapi.Node{ID: "solo", Addr: "chat.example:8080", Engine: "embedded", Started: started})
	if code := n.call(t, http.MethodPut, "/v1/admin/level", `{"level":1,"mode":"manual"}`, nil); code != http.StatusOK {
		t.Fatalf("pin: %d", code)
	}
	var st adminStatus
	if code := n.call(t, http.MethodGet, "/v1/admin/status", "", &st); code != http.StatusOK {
		t.Fatalf("status: %d", code)
	}
	if len(st.Nodes) != 1 {
		t.Fatalf("nodes = %+v, want this node alone", st.Nodes)
	}
	self := st.Nodes[0]
	if self.ID != "solo" || self.Addr != "chat.example:8080" || self.Engine != "embedded" ||
		!self.Since.Equal(started) || !self.Started.Equal(started) || self.Level != 1 || self.Mode != "manual" ||
		self.Connections == nil {
		t.Fatalf("node = %+v", self)
	}
	if len(st.History) != 1 || st.History[0].To != 1 || st.History[0].Node != "solo" || st.Cluster != "" {
		t.Fatalf("history = %+v, cluster_error %q", st.History, st.Cluster)
	}
	if info := n.Info(); info.Level != 1 || info.Engine != "embedded" {
		t.Fatalf("Info() = %+v", info)
	}
	if n.FlagTarget() != n.Flags {
		t.Fatal("without a cluster a flags file should go to the node's store")
	}
}
