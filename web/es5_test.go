package web

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// acorn is installed by scripts/deps.sh (make deps), into the git-ignored
// .tools folder at the module root.
const acorn = "../.tools/node_modules/acorn/bin/acorn"

// parseES5 runs acorn in ES5 mode on file and returns its complaint, if any.
func parseES5(t *testing.T, node, file string) (string, bool) {
	t.Helper()
	out, err := exec.Command(node, acorn, "--ecma5", "--silent", file).CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

// TestScriptsAreES5 parses every script under static/ as ES5, so the page
// still loads in browsers without ES2015: no let, const, arrows, classes or
// template literals.
func TestScriptsAreES5(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the ES5 check needs it (apt-get install nodejs)")
	}
	if _, err := os.Stat(acorn); err != nil {
		t.Fatalf("acorn is missing at %s: run `make deps` (scripts/deps.sh installs it)", acorn)
	}

	// The check must be able to fail: ES2015 is refused.
	bad := filepath.Join(t.TempDir(), "es2015.js")
	if err := os.WriteFile(bad, []byte("const f = (x) => `${x}`;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := parseES5(t, node, bad); ok {
		t.Fatal("acorn --ecma5 accepted ES2015 code; the check is not working")
	}

	var files []string
	err = fs.WalkDir(os.DirFS("static"), ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".js") {
			files = append(files, filepath.Join("static", path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts found under static/")
	}
	for _, f := range files {
		if msg, ok := parseES5(t, node, f); !ok {
			t.Errorf("%s is not ES5: %s", f, msg)
		}
	}
}
