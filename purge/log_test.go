package purge

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reopen closes ix and opens a new Index over the same directory and tier.
func reopen(t *testing.T, ix *Index) *Index {
	t.Helper()
	require.NoError(t, ix.Close())
	cfg := ix.cfg
	cfg.Registerer = nil
	again, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { again.Close() })
	return again
}

func TestBansSurviveRestart(t *testing.T) {
	clk := newClock()
	ix := newIndex(t, clk, Config{Dir: t.TempDir()})
	old := clk.Now().Add(-time.Hour)
	hard := mustPurge(t, ix, Request{URLs: []string{"http://a.test/x"}, Prefixes: []string{"http://b.test/img/"}, Hosts: []string{"c.test"}})
	clk.Advance(time.Second)
	soft := mustPurge(t, ix, Request{Tags: []string{"t"}, Soft: true})

	ix = reopen(t, ix)
	tests := []struct {
		give     storage.Meta
		wantAt   time.Time
		wantSoft bool
	}{
		{storage.Meta{URL: "http://a.test/x", ResponseTime: old}, hard.Time, false},
		{storage.Meta{URL: "http://b.test/img/1.png", ResponseTime: old}, hard.Time, false},
		{storage.Meta{URL: "https://c.test:8443/", ResponseTime: old}, hard.Time, false},
		{storage.Meta{URL: "http://d.test/", Tags: []string{"t"}, ResponseTime: old}, soft.Time, true},
	}
	for _, tt := range tests {
		at, s, banned := ix.Check(&tt.give)
		assert.True(t, banned, "Check(%s) after restart", tt.give.URL)
		assert.Equal(t, tt.wantSoft, s, "soft of %s", tt.give.URL)
		assert.True(t, at.Equal(tt.wantAt), "time of %s: %v, want %v", tt.give.URL, at, tt.wantAt)
	}
	_, _, banned := ix.Check(&storage.Meta{URL: "http://a.test/x", ResponseTime: clk.Now()})
	assert.False(t, banned, "fetched after the bans")
	assert.Equal(t, 4, ix.Len())
	require.Len(t, ix.Recent(10), 2)
	assert.Equal(t, soft.ID, ix.Recent(10)[0].ID)
}

func TestTornLastRecordIsIgnored(t *testing.T) {
	tests := []struct {
		name string
		tear func(data []byte, lastStart int) []byte
	}{
		{"cut in the payload", func(d []byte, _ int) []byte { return d[:len(d)-3] }},
		{"cut in the frame", func(d []byte, last int) []byte { return d[:last+5] }},
		{"payload not written", func(d []byte, last int) []byte {
			return append(d[:last+frameLen:last+frameLen], make([]byte, len(d)-last-frameLen)...)
		}},
		{"bit flipped in the payload", func(d []byte, _ int) []byte { d[len(d)-2] ^= 0x20; return d }},
		{"zeros after the last record", func(d []byte, _ int) []byte { return append(d, make([]byte, 300)...) }},
		{"frame of zeros", func(d []byte, _ int) []byte { return append(d, make([]byte, frameLen)...) }},
		{"frame half written, payload not written", func(d []byte, last int) []byte {
			clear(d[last+6:])
			return d
		}},
		{"length runs past the end", func(d []byte, last int) []byte {
			// Rewritten with its header checksum: a write that was cut short.
			n := binary.BigEndian.Uint32(d[last:])
			binary.BigEndian.PutUint32(d[last:], n+100)
			binary.BigEndian.PutUint32(d[last+8:], checksum(d[last:last+8]))
			return d
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			dir := t.TempDir()
			ix := newIndex(t, clk, Config{Dir: dir})
			first := mustPurge(t, ix, Request{Tags: []string{"first"}})
			path := filepath.Join(dir, logName)
			lastStart := int(ix.log.size)
			second := mustPurge(t, ix, Request{Tags: []string{"second"}})
			require.NoError(t, ix.Close())

			data, err := os.ReadFile(path)
			require.NoError(t, err)
			torn := tt.tear(bytes.Clone(data), lastStart)
			require.NoError(t, os.WriteFile(path, torn, 0o600))
			secondSurvives := len(torn) >= len(data) && bytes.Equal(torn[:len(data)], data)

			ix = reopen(t, ix)
			old := &storage.Meta{URL: "http://a.test/", Tags: []string{"first", "second"}, ResponseTime: first.Time.Add(-time.Hour)}
			at, _, banned := ix.Check(old)
			require.True(t, banned, "the first record survives")
			if secondSurvives {
				assert.True(t, at.Equal(second.Time), "the second record survives")
			} else {
				assert.True(t, at.Equal(first.Time), "the torn record is dropped")
				assert.Equal(t, 1, ix.Len())
			}

			// Appends continue after the good part.
			third := mustPurge(t, ix, Request{Tags: []string{"third"}})
			ix = reopen(t, ix)
			_, _, banned = ix.Check(&storage.Meta{Tags: []string{"third"}, ResponseTime: third.Time.Add(-time.Second)})
			assert.True(t, banned, "a record appended after the cut")
		})
	}
}

func TestCorruptLogBansEverythingStoredBefore(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	ix := newIndex(t, clk, Config{Dir: dir})
	mustPurge(t, ix, Request{Tags: []string{"first"}})
	mustPurge(t, ix, Request{Tags: []string{"second"}})
	require.NoError(t, ix.Close())
	path := filepath.Join(dir, logName)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data[len(logMagic)+frameLen+3] ^= 0x01 // inside the first record
	require.NoError(t, os.WriteFile(path, data, 0o600))

	ix, restart := restartAfterCorruption(t, ix, clk)
	at, soft, banned := ix.Check(&storage.Meta{URL: "http://any.test/", ResponseTime: restart.Add(-time.Second)})
	assert.True(t, banned && !soft, "everything stored before the restart is banned")
	assert.True(t, at.Equal(restart))
	_, _, banned = ix.Check(&storage.Meta{URL: "http://any.test/", ResponseTime: restart})
	assert.False(t, banned)

	ix = reopen(t, ix)
	_, _, banned = ix.Check(&storage.Meta{URL: "http://any.test/", ResponseTime: restart.Add(-time.Second)})
	assert.True(t, banned, "the ban on everything is itself durable")
}

// TestCorruptFrameHeaderIsNotATornTail pins a bug: a damaged length that
// made a record run past the end of the file passed for a torn tail, and
// every later record was dropped without the ban on everything.
func TestCorruptFrameHeaderIsNotATornTail(t *testing.T) {
	tests := []struct {
		name string
		give func(data []byte, starts []int) // damages data in place
	}{
		{"first length runs past the end", func(d []byte, s []int) { binary.BigEndian.PutUint32(d[s[0]:], uint32(len(d))) }},
		{"last length runs past the end", func(d []byte, s []int) { binary.BigEndian.PutUint32(d[s[2]:], uint32(len(d))) }},
		{"middle length one byte short", func(d []byte, s []int) { d[s[1]+3]-- }},
		{"first payload checksum", func(d []byte, s []int) { d[s[0]+5] ^= 0x10 }},
		{"last header checksum", func(d []byte, s []int) { d[s[2]+9] ^= 0x01 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			dir := t.TempDir()
			ix := newIndex(t, clk, Config{Dir: dir})
			var starts []int
			for _, tag := range []string{"first", "second", "third"} {
				starts = append(starts, int(ix.log.size))
				mustPurge(t, ix, Request{Tags: []string{tag}})
			}
			require.NoError(t, ix.Close())
			path := filepath.Join(dir, logName)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			tt.give(data, starts)
			require.NoError(t, os.WriteFile(path, data, 0o600))

			ix, restart := restartAfterCorruption(t, ix, clk)
			at, soft, banned := ix.Check(&storage.Meta{URL: "http://any.test/", ResponseTime: restart.Add(-time.Second)})
			assert.True(t, banned && !soft && at.Equal(restart), "everything stored before the restart is banned")
		})
	}
}

// restartAfterCorruption opens a new Index on the closed ix's damaged log
// a minute later, checks that it logged the corruption, and returns it and
// the restart time.
func restartAfterCorruption(t *testing.T, ix *Index, clk *clock) (*Index, time.Time) {
	t.Helper()
	var logged bytes.Buffer
	cfg := ix.cfg
	cfg.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	restart := clk.Advance(time.Minute)
	ix, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { ix.Close() })
	assert.Contains(t, logged.String(), "bans log corrupt")
	return ix, restart
}

// appendRecordV1 appends r's frame to b as version 1 of the log wrote it.
func appendRecordV1(b []byte, r *Record) []byte {
	payload, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.BigEndian.AppendUint32(b, checksum(payload))
	return append(b, payload...)
}

func TestVersion1LogIsReadAndRewritten(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	first := Record{ID: "one", Time: clk.Now().Add(-time.Minute), Bans: []Ban{{Kind: KindTag, Value: "first"}}}
	second := Record{ID: "two", Time: clk.Now(), Soft: true, Bans: []Ban{{Kind: KindURL, Value: "http://a.test/x"}}}
	data := []byte(logMagicV1)
	data = appendRecordV1(data, &first)
	data = appendRecordV1(data, &second)
	data = append(data, 0, 0, 0, 40, 1, 2) // a torn tail
	require.NoError(t, os.WriteFile(filepath.Join(dir, logName), data, 0o600))

	ix := newIndex(t, clk, Config{Dir: dir})
	check := func(ix *Index, wantLen int) {
		t.Helper()
		for _, rec := range []Record{first, second} {
			m := &storage.Meta{URL: rec.Bans[0].Value, Tags: []string{rec.Bans[0].Value}, ResponseTime: rec.Time.Add(-time.Second)}
			at, soft, banned := ix.Check(m)
			assert.True(t, banned && soft == rec.Soft && at.Equal(rec.Time), "record %s: at %v soft %v banned %v", rec.ID, at, soft, banned)
		}
		assert.Equal(t, wantLen, ix.Len())
	}
	check(ix, 2)
	got, err := os.ReadFile(filepath.Join(dir, logName))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(got, []byte(logMagic)), "rewritten as version 2: %q", got[:len(logMagic)])
	assert.Equal(t, int64(len(got)), ix.log.size, "log size")
	var held int64
	for _, rs := range ix.records {
		held += rs.size
	}
	assert.Equal(t, ix.log.size-int64(len(logMagic)), held, "records' sizes in the rewritten log")

	mustPurge(t, ix, Request{Tags: []string{"third"}})
	ix = reopen(t, ix)
	check(ix, 3)
}

func TestLogDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	newIndex(t, newClock(), Config{Dir: dir})
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "mode of %s", dir)
}

func TestCompactionKeepsLiveBans(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	ix := newIndex(t, clk, Config{Dir: dir, CommitDelay: testCommitDelay})
	long := strings.Repeat("x", 1000)
	for i := range 100 {
		mustPurge(t, ix, Request{URLs: []string{fmt.Sprintf("http://a.test/%d/%s", i, long)}})
	}
	clk.Advance(testCommitDelay)
	live := mustPurge(t, ix, Request{Prefixes: []string{"http://b.test/live/"}})
	path := filepath.Join(dir, logName)
	before, err := os.Stat(path)
	require.NoError(t, err)

	require.NoError(t, ix.Sweep(t.Context()))
	assert.Equal(t, 1, ix.Len(), "only the live ban is left")
	after, err := os.Stat(path)
	require.NoError(t, err)
	assert.Less(t, after.Size(), before.Size()/50, "log compacted from %d bytes", before.Size())
	_, err = os.Stat(path + ".tmp")
	assert.ErrorIs(t, err, os.ErrNotExist, "temporary file left behind")

	ix = reopen(t, ix)
	assert.Equal(t, 1, ix.Len())
	at, _, banned := ix.Check(&storage.Meta{URL: "http://b.test/live/a", ResponseTime: live.Time.Add(-time.Second)})
	assert.True(t, banned && at.Equal(live.Time), "the live ban survives compaction")
}

func TestBrokenLogIsRewrittenBeforeTheNextAppend(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	ix := newIndex(t, clk, Config{Dir: dir})
	first := mustPurge(t, ix, Request{Tags: []string{"first"}})
	// As after a failed write: a tail of unknown content, then more bytes.
	f, err := os.OpenFile(filepath.Join(dir, logName), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	f.Write(binary.BigEndian.AppendUint32(nil, 40))
	f.Write([]byte("half a record"))
	require.NoError(t, f.Close())
	ix.mu.Lock()
	ix.log.broken = true
	ix.mu.Unlock()

	second := mustPurge(t, ix, Request{Tags: []string{"second"}})
	ix = reopen(t, ix)
	for _, rec := range []Record{first, second} {
		tag := rec.Bans[0].Value
		_, _, banned := ix.Check(&storage.Meta{Tags: []string{tag}, ResponseTime: rec.Time.Add(-time.Second)})
		assert.True(t, banned, "record %s", tag)
	}
	assert.Equal(t, 2, ix.Len())
}

func TestUnknownLogFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, logName), []byte("something else\n"), 0o600))
	_, err := New(Config{Canonicalize: canonicalize, Tier: newMemory(t), Dir: dir})
	assert.ErrorContains(t, err, "not an Outpost bans log")
}

func FuzzDecodeLog(f *testing.F) {
	var b []byte
	b = append(b, logMagic...)
	f.Add(bytes.Clone(b))
	for _, rec := range []Record{
		{ID: "a", Time: time.Unix(1, 0), Bans: []Ban{{Kind: KindAll}}},
		{ID: "b", Time: time.Unix(2, 0), Soft: true, Bans: []Ban{{Kind: KindTag, Value: "t"}, {Kind: KindPrefix, Value: "http://a.test/"}}},
	} {
		b, _ = appendRecord(b, &rec)
		f.Add(bytes.Clone(b))
	}
	f.Add(append(bytes.Clone(b), 0, 0, 0, 9))
	f.Add(appendRecordV1([]byte(logMagicV1), &Record{ID: "c", Time: time.Unix(3, 0), Bans: []Ban{{Kind: KindHost, Value: "a.test"}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !bytes.HasPrefix(data, []byte(logMagic)) && !bytes.HasPrefix(data, []byte(logMagicV1)) {
			data = append([]byte(logMagic), data...)
		}
		recs, good, _ := decodeLog(data)
		if good < int64(len(logMagic)) || good > int64(len(data)) {
			t.Fatalf("good part %d of %d bytes", good, len(data))
		}
		again := []byte(logMagic)
		for _, r := range recs {
			var err error
			if again, err = appendRecord(again, &r.rec); err != nil {
				t.Fatalf("re-encode %+v: %v", r.rec, err)
			}
		}
		recs2, good2, corrupt := decodeLog(again)
		if corrupt != nil || good2 != int64(len(again)) || len(recs2) != len(recs) {
			t.Fatalf("re-encoded log: %d of %d records, %d of %d bytes, %v", len(recs2), len(recs), good2, len(again), corrupt)
		}
	})
}

func TestRepeatedPurgesOfOneTargetKeepTheLogSmall(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	ix := newIndex(t, clk, Config{Dir: dir})
	u := "http://a.test/" + strings.Repeat("x", 1000)
	var last Record
	for range 300 { // 300 KiB of records, all but one subsumed
		last = mustPurge(t, ix, Request{URLs: []string{u}})
		clk.Advance(time.Millisecond)
	}
	info, err := os.Stat(filepath.Join(dir, logName))
	require.NoError(t, err)
	assert.LessOrEqual(t, info.Size(), int64(2*compactMin), "log size")

	ix = reopen(t, ix)
	at, _, banned := ix.Check(&storage.Meta{URL: u, ResponseTime: last.Time.Add(-time.Nanosecond)})
	assert.True(t, banned && at.Equal(last.Time), "the newest ban survives compaction")
}
