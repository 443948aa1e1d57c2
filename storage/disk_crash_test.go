package storage_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// crashChildEnv, when set to a directory, makes TestDiskHardKill the
// workload of a child process instead of the test.
const crashChildEnv = "OUTPOST_DISK_CRASH_CHILD"

// crashKeys is how many keys the crash workload writes over and over.
const crashKeys = 40

// crashSizes are the body sizes of the crash workload: empty, small, and
// spanning one to three checksummed chunks.
var crashSizes = []int{0, 100, 5000, 300_000, chunk + 7, 2*chunk + 4099}

// TestDiskHardKill kills a process with SIGKILL at random points of a
// workload of writes, replacements, updates, deletes and abandoned writes,
// reopens its directory, and checks that every object served is
// byte-exact: its body is the one its metadata names (X-Seed).
func TestDiskHardKill(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashWorkload(t, dir)
		return
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		killAfter := 3 + r.IntN(30)
		runUntilKilled(t, "TestDiskHardKill", crashChildEnv, dir, round, killAfter, func(line string) bool { return line == "op" })

		d := newDisk(t, storage.DiskConfig{Dir: dir})
		served := checkCrashDir(t, d)
		t.Logf("round %d: killed after %d operations; %d objects served, all byte-exact", round, killAfter, served)
		require.NoError(t, d.Close())
	}
}

// checkCrashDir reads every key of the crash workload and checks each
// object found. It returns how many were found.
func checkCrashDir(t *testing.T, d *storage.Disk) int {
	t.Helper()
	found := 0
	for k := range crashKeys {
		o, err := d.Get(context.Background(), keyN(k))
		if err != nil {
			assert.ErrorIs(t, err, storage.ErrNotFound, "Get(%q)", keyN(k))
			continue
		}
		found++
		checkSeeded(t, o, keyN(k), crashSizes)
		o.Close()
	}
	return found
}

// runUntilKilled runs test in a child process of this test binary, its
// workload told by env=dir and the round as its seed, and kills it with
// SIGKILL once count has said yes to killAfter lines of its output.
func runUntilKilled(t *testing.T, test, env, dir string, round, killAfter int, count func(line string) bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env+"="+dir, "OUTPOST_CRASH_SEED="+strconv.Itoa(round))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(out)
	for n := 0; n < killAfter && lines.Scan(); {
		if count(lines.Text()) {
			n++
		}
	}
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
}

// checkSeeded checks that the body of o, stored under key, is the one its
// X-Seed field names, with one of the workload's sizes.
func checkSeeded(t *testing.T, o storage.Object, key string, sizes []int) {
	t.Helper()
	seed, err := strconv.ParseUint(o.Meta().Header.Get("X-Seed"), 10, 64)
	assert.NoError(t, err, "X-Seed of %q", key)
	got := readBody(t, o)
	assert.True(t, string(got) == string(randomBody(seed, len(got))), "body of %q differs from seed %d (%d bytes)", key, seed, len(got))
	assert.Contains(t, sizes, len(got), "size of %q", key)
}

// crashWorkload runs until killed, printing "op" after each operation.
func crashWorkload(t *testing.T, dir string) {
	d, err := storage.NewDisk(storage.DiskConfig{Dir: dir, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := strconv.Atoi(os.Getenv("OUTPOST_CRASH_SEED"))
	r := rand.New(rand.NewPCG(uint64(seed), 99))
	ctx := context.Background()
	for i := 0; ; i++ {
		key := keyN(r.IntN(crashKeys))
		switch op := r.IntN(10); {
		case op < 6, op == 9: // write (or, for 9, abandon) a new version
			s := uint64(seed)<<32 | uint64(i)
			size := crashSizes[r.IntN(len(crashSizes))]
			m := meta(key, int64(size))
			if r.IntN(4) == 0 {
				m.Size = -1
			}
			m.Header.Set("X-Seed", strconv.FormatUint(s, 10))
			w, err := d.Put(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			b := randomBody(s, size)
			for len(b) > 0 {
				k := min(len(b), 1+r.IntN(200_000))
				w.Write(b[:k])
				b = b[k:]
			}
			if op != 9 {
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
		case op < 8: // a 304 refreshes the metadata, perhaps past the reserved space
			o, err := d.Get(ctx, key)
			if err != nil {
				continue
			}
			m := o.Meta().Clone()
			o.Close()
			m.Header.Set("X-Refresh", fmt.Sprint(i))
			if r.IntN(3) == 0 {
				m.Header.Set("X-Long", strings.Repeat("x", 700+r.IntN(2000)))
			}
			d.Update(ctx, m)
		default:
			d.Delete(ctx, key)
		}
		fmt.Println("op")
	}
}
