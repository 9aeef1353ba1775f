// Command chatctl is the operator's tool for a running chatd: it shows the
// status, sets the degradation level and feature flags, and runs guarded
// rollouts of flags, through the admin API.
//
//	chatctl [--url URL] [--token JWT] status
//	chatctl level set N [--for 30m]
//	chatctl level auto
//	chatctl flags list
//	chatctl flags set NAME [--rollout P] [--enabled=true|false]
//	chatctl rollout status
//	chatctl rollout start FLAG --steps 10,50,100 --hold 24h [--window 10m] [--guards JSON]
//	chatctl rollout pause|resume FLAG
//	chatctl rollout abort FLAG [--to-zero]
//
// The token must carry admin: true. It comes from --token or CHAT_TOKEN;
// the URL from --url or CHAT_URL (default http://localhost:8080).
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
