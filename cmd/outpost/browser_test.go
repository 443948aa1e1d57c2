package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	be "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of the pages a person looks at, in a real headless Chromium
// (Debian's chromium package; .ci/run installs it) driven over the Chrome
// DevTools Protocol: a page loads, its script runs, the test reads the DOM
// and every console error, exception and failed load the page causes.

// requireChromiumEnv makes a missing Chromium a failure rather than a skip
// (.ci/run sets it once it installed the browser).
const requireChromiumEnv = "OUTPOST_REQUIRE_CHROMIUM"

// chromium is a headless Chromium with one page attached over CDP.
type chromium struct {
	cmd  *exec.Cmd
	page *cdp
}

var devtoolsLine = regexp.MustCompile(`DevTools listening on (ws://[^\s]+)`)

// startChromium starts headless Chromium, or skips the test with how to
// get it when it is not installed.
func startChromium(t *testing.T) *chromium {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser")
	}
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv(requireChromiumEnv) != "" {
			t.Fatalf("chromium is not installed and %s is set", requireChromiumEnv)
		}
		t.Skip("chromium is not installed: apt-get install chromium (.ci/run installs it) to run the browser tests")
	}
	// The flags this machine needs: no sandbox as root, no GPU, no network
	// of its own (every background connection would be refused), a fresh
	// profile.
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(),
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1280,1600", "about:blank")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	ws := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := devtoolsLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case ws <- m[1]:
				default:
				}
			}
		}
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	var browserWS string
	select {
	case browserWS = <-ws:
	case <-exited:
		t.Fatal("chromium exited before it listened for DevTools")
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not start within 30s")
	}
	// The page target: the about:blank tab it opened.
	host := strings.TrimPrefix(browserWS, "ws://")
	host = host[:strings.IndexByte(host, '/')]
	var targets []struct {
		Type string `json:"type"`
		WS   string `json:"webSocketDebuggerUrl"`
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + host + "/json/list")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		targets = nil
		json.NewDecoder(resp.Body).Decode(&targets)
		for _, tg := range targets {
			if tg.Type == "page" {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "no page target")
	c := &chromium{cmd: cmd}
	for _, tg := range targets {
		if tg.Type == "page" {
			c.page, err = dialCDP(tg.WS)
			require.NoError(t, err)
			t.Cleanup(func() { c.page.close() })
			break
		}
	}
	for _, domain := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		_, err := c.page.call(domain, nil)
		require.NoError(t, err)
	}
	return c
}

// navigate opens url in the page and waits for its load event.
func (c *chromium) navigate(t *testing.T, url string) {
	t.Helper()
	_, err := c.page.call("Page.navigate", map[string]any{"url": url})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var state string
		return c.eval(t, "document.readyState", &state) == nil && state == "complete" && c.eval(t, "location.href", &state) == nil && state == url
	}, 20*time.Second, 20*time.Millisecond, "%s never loaded", url)
}

// eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its value into out.
func (c *chromium) eval(t *testing.T, expr string, out any) error {
	t.Helper()
	res, err := c.page.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true})
	if err != nil {
		return err
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("%s: %s", expr, r.Exception.Text)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// screenshot saves a PNG of the page to $OUTPOST_SCREENSHOTS/name.png when
// that directory is set (to look at what the tests saw).
func (c *chromium) screenshot(t *testing.T, name string) {
	dir := os.Getenv("OUTPOST_SCREENSHOTS")
	if dir == "" {
		return
	}
	res, err := c.page.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true})
	require.NoError(t, err)
	var r struct {
		Data string `json:"data"`
	}
	require.NoError(t, json.Unmarshal(res, &r))
	b, err := base64.StdEncoding.DecodeString(r.Data)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644))
}

// cdp is a Chrome DevTools Protocol session over a WebSocket (RFC 6455):
// calls by id, and the events that report console errors, exceptions and
// failed loads collected as problems.
type cdp struct {
	conn net.Conn
	br   *bufio.Reader

	wmu sync.Mutex // one frame at a time
	mu  sync.Mutex
	id  int
	out map[int]chan cdpMessage
	bad []string // console errors, exceptions, failed loads
	err error    // the reader's end
}

type cdpMessage struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// dialCDP opens the WebSocket at url (ws://host:port/path).
func dialCDP(url string) (*cdp, error) {
	rest := strings.TrimPrefix(url, "ws://")
	host, path, _ := strings.Cut(rest, "/")
	conn, err := net.DialTimeout("tcp", host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	var key [16]byte
	rand.Read(key[:])
	fmt.Fprintf(conn, "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		path, host, base64.StdEncoding.EncodeToString(key[:]))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("websocket upgrade: %s", resp.Status)
	}
	c := &cdp{conn: conn, br: br, out: map[int]chan cdpMessage{}}
	go c.read()
	return c, nil
}

func (c *cdp) close() { c.conn.Close() }

// call sends a method and waits up to 30s for its result.
func (c *cdp) call(method string, params any) (json.RawMessage, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.id++
	id := c.id
	ch := make(chan cdpMessage, 1)
	c.out[id] = ch
	c.mu.Unlock()
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	if err := c.writeFrame(msg); err != nil {
		return nil, err
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: connection closed", method)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		return m.Result, nil
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s: no answer within 30s", method)
	}
}

// problems returns what the page reported as errors so far.
func (c *cdp) problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.bad...)
}

// writeFrame sends one masked text frame, as a client must.
func (c *cdp) writeFrame(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	hdr := []byte{0x81}
	switch n := len(p); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = be.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	masked := make([]byte, len(p))
	for i := range p {
		masked[i] = p[i] ^ mask[i%4]
	}
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(append(hdr, masked...))
	return err
}

// readMessage reads one message, joining continuation frames.
func (c *cdp) readMessage() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return nil, err
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return nil, err
			}
			n = uint64(be.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return nil, err
			}
			n = be.BigEndian.Uint64(b[:])
		}
		if n > 64<<20 {
			return nil, errors.New("websocket frame over 64 MiB")
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return nil, err
		}
		switch h[0] & 0x0f {
		case 0x8:
			return nil, io.EOF
		case 0x9, 0xa: // ping, pong: Chromium sends none to a client
			continue
		}
		msg = append(msg, payload...)
		if h[0]&0x80 != 0 {
			return msg, nil
		}
	}
}

// read dispatches results to their calls and collects problems.
func (c *cdp) read() {
	var err error
	for {
		var raw []byte
		if raw, err = c.readMessage(); err != nil {
			break
		}
		var m cdpMessage
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		c.mu.Lock()
		if m.ID != 0 {
			if ch, ok := c.out[m.ID]; ok {
				ch <- m
				delete(c.out, m.ID)
			}
		} else if p := problem(m); p != "" {
			c.bad = append(c.bad, p)
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.err = err
	for id, ch := range c.out {
		close(ch)
		delete(c.out, id)
	}
	c.mu.Unlock()
}

// problem describes an event that reports an error in the page, or "".
func problem(m cdpMessage) string {
	switch m.Method {
	case "Runtime.exceptionThrown":
		var p struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		json.Unmarshal(m.Params, &p)
		return "exception: " + p.Details.Text + " " + p.Details.Exception.Description
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string            `json:"type"`
			Args []json.RawMessage `json:"args"`
		}
		json.Unmarshal(m.Params, &p)
		if p.Type == "error" || p.Type == "assert" || p.Type == "warning" {
			return "console." + p.Type + ": " + fmt.Sprint(string(joinRaw(p.Args)))
		}
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Level  string `json:"level"`
				Source string `json:"source"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		json.Unmarshal(m.Params, &p)
		if p.Entry.Level == "error" || p.Entry.Level == "warning" {
			return "log " + p.Entry.Level + " (" + p.Entry.Source + "): " + p.Entry.Text + " " + p.Entry.URL
		}
	}
	return ""
}

func joinRaw(rs []json.RawMessage) []byte {
	var b []byte
	for _, r := range rs {
		b = append(append(b, r...), ' ')
	}
	return b
}

// TestStatusPageInChromium: the status page loads in a real browser with
// no console error, draws its charts from /status.json, and shows data
// once requests flow.
func TestStatusPageInChromium(t *testing.T) {
	t.Setenv(tokenEnv, "")
	br := startChromium(t)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, strings.Repeat("s", 2000))
	})
	tn := startNodeWith(t, fastSampler, "--origin", o.URL, "--cache-dir", t.TempDir())
	br.navigate(t, tn.admin+"/status")
	require.Eventually(t, func() bool {
		var meta string
		return br.eval(t, `document.getElementById("meta").textContent`, &meta) == nil && strings.HasPrefix(meta, "version ")
	}, 20*time.Second, 50*time.Millisecond, "the page never rendered /status.json")
	var title string
	require.NoError(t, br.eval(t, "document.title", &title))
	assert.Equal(t, "outpost · Outpost status", title)

	for i := range 30 {
		fetch(t, fmt.Sprintf("%s/hot.css?i=%d", tn.url, i%3))
	}
	code, _ := purgeCLI(t, "--admin", tn.admin, "--url", tn.url+"/hot.css?i=0")
	require.Equal(t, 0, code)

	type chartState struct {
		Max    float64 `json:"max"`
		Points int     `json:"points"`
	}
	read := func(id string) chartState {
		var s chartState
		br.eval(t, fmt.Sprintf(`(() => { const e = document.getElementById(%q); return {max: Number(e.dataset.max || 0), points: Number(e.dataset.points || 0)}; })()`, id), &s)
		return s
	}
	require.Eventually(t, func() bool {
		rps, ratio, bytes := read("chart-rps"), read("chart-ratio"), read("chart-bytes")
		return rps.Max > 0 && rps.Points >= 2 && ratio.Points >= 1 && bytes.Max > 0
	}, 30*time.Second, 100*time.Millisecond, "the charts never showed the traffic")
	var polyline string
	require.NoError(t, br.eval(t, `document.querySelector('#chart-rps polyline[data-series="hit"]').getAttribute("points")`, &polyline))
	assert.Regexp(t, `^[\d.]+,[\d.]+( [\d.]+,[\d.]+)+$`, polyline, "the hit line has points")

	var top, tiers, purges, origins string
	require.Eventually(t, func() bool {
		br.eval(t, `document.getElementById("top-requests").textContent`, &top)
		br.eval(t, `document.getElementById("purges").textContent`, &purges)
		return strings.Contains(top, "/hot.css") && strings.Contains(purges, "hot.css?i=0")
	}, 20*time.Second, 50*time.Millisecond, "top URLs %q, purges %q", top, purges)
	require.NoError(t, br.eval(t, `document.getElementById("tiers").textContent`, &tiers))
	assert.Contains(t, tiers, "memory")
	assert.Contains(t, tiers, "disk")
	require.NoError(t, br.eval(t, `document.getElementById("origins").textContent`, &origins))
	assert.Contains(t, origins, o.URL)
	assert.Contains(t, origins, " ms", "the origin's latency")
	br.screenshot(t, "status")
	assert.Empty(t, br.page.problems(), "console errors, exceptions or failed loads")
}

// TestDemoPageInChromium: the demo page shows what it says: repeat
// fetches are hits whose Age grows, the origin's count stays at one, the
// script arrives compressed, and the no-store API reaches the origin every
// time.
func TestDemoPageInChromium(t *testing.T) {
	br := startChromium(t)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cmdDemo(ctx, []string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	sc := bufio.NewScanner(pr)
	edge := ""
	for edge == "" && sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "edge" {
			edge = strings.TrimSuffix(f[1], "/")
		}
	}
	go io.Copy(io.Discard, pr)
	require.NotEmpty(t, edge)

	br.navigate(t, edge+"/")
	type row struct {
		Cells []string `json:"cells"`
		Class string   `json:"cls"`
	}
	rows := func() map[string]row {
		var list []row
		br.eval(t, `[...document.querySelectorAll("#assets tr")].map(tr => ({cells: [...tr.children].map(td => td.textContent), cls: tr.className}))`, &list)
		out := map[string]row{}
		for _, r := range list {
			if len(r.Cells) == 6 {
				out[r.Cells[0]] = r
			}
		}
		return out
	}
	again := func() {
		var before, after int
		br.eval(t, `Number(document.getElementById("refreshes").textContent)`, &before)
		require.NoError(t, br.eval(t, `document.getElementById("again").click()`, nil))
		require.Eventually(t, func() bool {
			return br.eval(t, `Number(document.getElementById("refreshes").textContent)`, &after) == nil && after > before
		}, 20*time.Second, 20*time.Millisecond, "no refresh after the click")
	}
	// The first rounds may still see the 24 MiB video's fill (a miss,
	// then collapsed waiters); from then on every asset is a hit.
	cacheable := []string{"/css/site.css", "/js/app.js", "/img/logo.png", "/fonts/outpost-icons.ttf", "/media/big.bin"}
	var r map[string]row
	require.Eventually(t, func() bool {
		again()
		r = rows()
		for _, path := range cacheable {
			if r[path].Class != "hit" {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "not every asset became a hit: %v", r)
	require.Len(t, r, 6, "one row per asset")
	for _, path := range cacheable {
		assert.Contains(t, r[path].Cells[2], "; hit", path)
		assert.Equal(t, "200", r[path].Cells[1], path)
	}
	assert.Equal(t, "1", r["/css/site.css"].Cells[5], "the origin was asked once for the style sheet")
	assert.Equal(t, "1", r["/media/big.bin"].Cells[5], "and once for the video")
	assert.Contains(t, []string{"zstd", "br", "gzip"}, r["/js/app.js"].Cells[4], "the script compressed on the fly")
	assert.Equal(t, "miss", r["/api/time"].Class)
	assert.Contains(t, r["/api/time"].Cells[2], "no-store")
	apiCount := r["/api/time"].Cells[5]

	first, err := strconv.Atoi(r["/css/site.css"].Cells[3])
	require.NoError(t, err, "the Age of a hit")
	require.Eventually(t, func() bool {
		again()
		now := rows()["/css/site.css"]
		age, err := strconv.Atoi(now.Cells[3])
		return now.Class == "hit" && err == nil && age > first && now.Cells[5] == "1"
	}, 20*time.Second, 300*time.Millisecond, "the Age of the style sheet never grew past %s", first)
	assert.NotEqual(t, apiCount, rows()["/api/time"].Cells[5], "every request for the API reaches the origin")
	br.screenshot(t, "demo")
	assert.Empty(t, br.page.problems(), "console errors, exceptions or failed loads")
}
