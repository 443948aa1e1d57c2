package purge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/outpost-cdn/outpost/internal/httpurl"
)

// Client speaks the admin API's POST /purge: what `outpost purge` uses. The
// zero value is not usable: Admin is required. It is safe for concurrent
// use.
type Client struct {
	// Admin is the admin listener's base URL, such as
	// http://127.0.0.1:9091.
	Admin string
	// Token is sent as a bearer token. Empty sends none.
	Token string
	// HTTP sends the requests. Nil means http.DefaultClient.
	HTTP *http.Client
}

// APIError is an answer from the admin API other than success. Message is
// the server's explanation (its {"error": ...}, or the start of its body).
type APIError struct {
	StatusCode int
	Message    string
}

// Error implements error.
func (e *APIError) Error() string {
	s := fmt.Sprintf("purge: admin API answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// maxAnswer bounds the admin API answer the client reads.
const maxAnswer = 1 << 20

// Purge sends req to the admin API and returns its Result. An answer other
// than 200 is an *APIError carrying the server's message (a 400 says what is
// wrong with the request, a 401 that the token is missing or wrong);
// failing to reach the server is a wrapped transport error.
func (c *Client) Purge(ctx context.Context, req Request) (Result, error) {
	endpoint, err := c.endpoint("purge")
	if err != nil {
		return Result{}, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Result{}, fmt.Errorf("purge: encode request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("purge: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	if c.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return Result{}, fmt.Errorf("purge: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return Result{}, fmt.Errorf("purge: read answer from %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Result{}, &APIError{StatusCode: resp.StatusCode, Message: answerMessage(answer)}
	}
	var res Result
	if err := json.Unmarshal(answer, &res); err != nil || res.ID == "" {
		return Result{}, fmt.Errorf("purge: %s answered 200 without a purge result: %s", endpoint, quote(string(answer)))
	}
	return res, nil
}

// endpoint returns the URL of an admin API path.
func (c *Client) endpoint(path string) (string, error) {
	u, err := httpurl.Parse(c.Admin)
	if err != nil {
		return "", fmt.Errorf("purge: Client.Admin %s is not an http(s) URL", quote(c.Admin))
	}
	return u.JoinPath(path).String(), nil
}

// answerMessage returns the explanation in an error answer's body.
func answerMessage(body []byte) string {
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		return eb.Error
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// ReadURLs reads absolute http(s) URLs one per line, as `outpost purge
// --file` and `outpost warm --file` take them: surrounding spaces are
// trimmed, blank lines and lines starting with # are skipped. A line that
// is not an absolute http(s) URL fails the whole read, with its number.
func ReadURLs(r io.Reader) ([]string, error) {
	var urls []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxURLLen+1)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if err := checkHTTPURL(s); err != nil {
			return nil, fmt.Errorf("purge: line %d %s: %w", line, quote(s), err)
		}
		urls = append(urls, s)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("purge: line %d: longer than %d bytes", line+1, maxURLLen)
		}
		return nil, fmt.Errorf("purge: read URLs: %w", err)
	}
	return urls, nil
}
