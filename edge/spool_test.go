package edge

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSpoolFallsBackToMemory: a spool whose directory cannot take a file
// keeps the body in memory, within the shared budget, and reads it back
// whole; past the budget it refuses, and closing gives the budget back.
func TestSpoolFallsBackToMemory(t *testing.T) {
	budget := &spoolBudget{max: 100 << 10}
	sp, err := newSpool(filepath.Join(t.TempDir(), "missing"), budget)
	require.NoError(t, err)
	body := bytes.Repeat([]byte("0123456789"), 8<<10)
	for i := 0; i < len(body); i += 1000 {
		n, err := sp.Write(body[i:min(i+1000, len(body))])
		require.NoError(t, err)
		require.Equal(t, min(1000, len(body)-i), n)
	}
	got, err := io.ReadAll(io.NewSectionReader(sp, 0, int64(len(body))))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(body, got))
	part := make([]byte, 20)
	n, err := sp.ReadAt(part, 12345)
	require.NoError(t, err)
	assert.Equal(t, body[12345:12365], part[:n])

	_, err = sp.Write(make([]byte, 30<<10))
	assert.ErrorIs(t, err, errSpoolBudget, "a write past the budget")
	require.NoError(t, sp.Close())
	assert.Zero(t, budget.used.Load(), "budget given back on close")
}
