package storage_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeBehindChildEnv, when set to a directory, makes
// TestWriteBehindHardKill the workload of a child process.
const writeBehindChildEnv = "OUTPOST_WRITE_BEHIND_CRASH_CHILD"

// writeBehindSizes are the body sizes of the workload, all within the
// memory tier's limit, so every write goes through the write-behind queue.
var writeBehindSizes = []int{0, 100, 5000, 70_000, 300_000}

// TestWriteBehindHardKill kills a process with SIGKILL while it writes,
// replaces, refreshes and deletes objects through Tiered (whose disk copies
// are written behind), reopens its disk directory, and checks what the disk
// serves: every body is byte-exact (its metadata names its seed), and a key
// whose last operation was a completed Delete is gone: a purge is never
// undone by a queued write.
func TestWriteBehindHardKill(t *testing.T) {
	if dir := os.Getenv(writeBehindChildEnv); dir != "" {
		writeBehindWorkload(t, dir)
		return
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	rounds := 5
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		killAfter := 20 + r.IntN(200)
		// key → its last operation read from the child: "begin", "put" or
		// "del", and the operation's seed. The child goes on a little
		// after the last line read, so a key may have been written again
		// after a "del"; those writes have a larger seed.
		type op struct {
			name string
			seed uint64
		}
		last := map[string]op{}
		runUntilKilled(t, "TestWriteBehindHardKill", writeBehindChildEnv, dir, round, killAfter, func(line string) bool {
			if f := strings.Fields(line); len(f) == 3 {
				s, err := strconv.ParseUint(f[2], 10, 64)
				require.NoError(t, err, "line %q", line)
				last[f[1]] = op{f[0], s}
			}
			return true
		})

		d := newDisk(t, storage.DiskConfig{Dir: dir})
		served, purged := 0, 0
		for k := range crashKeys {
			key := keyN(k)
			o, err := d.Get(context.Background(), key)
			if err != nil {
				assert.ErrorIs(t, err, storage.ErrNotFound, "Get(%q)", key)
				if last[key].name == "del" {
					purged++
				}
				continue
			}
			if l := last[key]; l.name == "del" {
				seed, _ := strconv.ParseUint(o.Meta().Header.Get("X-Seed"), 10, 64)
				assert.Greater(t, seed, l.seed, "round %d: %q written before its Delete returned, served after it", round, key)
			}
			served++
			checkSeeded(t, o, key, writeBehindSizes)
			o.Close()
		}
		t.Logf("round %d: killed after %d lines; %d objects served byte-exact, %d purged keys stayed gone", round, killAfter, served, purged)
		require.NoError(t, d.Close())
	}
}

// writeBehindWorkload runs until killed. It prints "begin <key> <seed>"
// before a write, "put <key> <seed>" once its Commit returned and
// "del <key> <seed>" once a Delete returned; seeds grow with each operation
// and each round.
func writeBehindWorkload(t *testing.T, dir string) {
	mem, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: 4 << 20, MaxObjectSize: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	disk, err := storage.NewDisk(storage.DiskConfig{Dir: dir, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := storage.NewTiered(mem, disk, storage.TieredConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := strconv.Atoi(os.Getenv("OUTPOST_CRASH_SEED"))
	r := rand.New(rand.NewPCG(uint64(seed), 98))
	ctx := context.Background()
	for i := 0; ; i++ {
		key := keyN(r.IntN(crashKeys))
		s := uint64(seed)<<32 | uint64(i)
		switch op := r.IntN(10); {
		case op < 6:
			fmt.Println("begin", key, s)
			size := writeBehindSizes[r.IntN(len(writeBehindSizes))]
			m := meta(key, int64(size))
			m.Header.Set("X-Seed", strconv.FormatUint(s, 10))
			w, err := ts.Put(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			b := randomBody(s, size)
			for len(b) > 0 {
				k := min(len(b), 1+r.IntN(64<<10))
				w.Write(b[:k])
				b = b[k:]
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			fmt.Println("put", key, s)
		case op < 8: // a 304 refreshes the metadata
			o, err := ts.Get(ctx, key)
			if err != nil {
				continue
			}
			m := o.Meta().Clone()
			o.Close()
			m.Header.Set("X-Refresh", fmt.Sprint(i))
			ts.Update(ctx, m)
		default:
			if err := ts.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			fmt.Println("del", key, s)
		}
	}
}
