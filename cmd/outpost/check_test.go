package main

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestCheck: `outpost check` validates a configuration without serving:
// 0 and a summary when valid, 2 and the field and line when not.
func TestCheck(t *testing.T) {
	t.Setenv(tokenEnv, "")
	certFile, keyFile, _ := selfSigned(t)
	tests := []struct {
		name     string
		giveYAML string
		wantCode int
		want     []string
	}{
		{"valid", "hosts:\n  - names: [a.test]\n    origins: [\"http://127.0.0.1:1\"]\n", 0, []string{"is valid", "1 host entries", "TLS off"}},
		{"valid with TLS", fmt.Sprintf("tls: {cert: %q, key: %q}\nhosts:\n  - origins: [\"http://127.0.0.1:1\"]\n", certFile, keyFile), 0, []string{"1 certificate pair(s), HTTP/3"}},
		{"bad URL", "hosts:\n  - origins: [\"ftp://x\"]\n", 2, []string{"line 2", "hosts[0].origins[0]"}},
		{"duplicate server", "hosts:\n  - origins: [\"http://127.0.0.1:1\", \"http://127.0.0.1:1\"]\n", 2, []string{"hosts[0]", "origins[1]"}},
		{"two catch-alls", "hosts:\n  - origins: [\"http://127.0.0.1:1\"]\n  - origins: [\"http://127.0.0.1:2\"]\n", 2, []string{"hosts[1]", "catch-all"}},
		{"missing token file", "admin: {token_file: /nonexistent/token}\nhosts:\n  - origins: [\"http://127.0.0.1:1\"]\n", 2, []string{"admin.token_file"}},
		{"missing key", fmt.Sprintf("tls: {cert: %q}\nhosts:\n  - origins: [\"http://127.0.0.1:1\"]\n", certFile), 2, []string{"line 1", "tls.key", "missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{"check", "--config", writeFile(t, "o.yaml", tt.giveYAML)}, &stdout, &stderr)
			assert.Equal(t, tt.wantCode, code, "stdout %q stderr %q", stdout.String(), stderr.String())
			for _, w := range tt.want {
				assert.Contains(t, stdout.String()+stderr.String(), w)
			}
		})
	}
}
