package purge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
)

// Purger records purges. *Index is one; a fleet's bus wraps it to publish
// what it records.
type Purger interface {
	// Purge validates and records req; a refused request returns a
	// *ValidationError and records nothing.
	Purge(ctx context.Context, req Request) (Record, error)
}

// HandlerConfig configures a Handler. Purger is required.
type HandlerConfig struct {
	// Purger records the purges the handler accepts.
	Purger Purger
	// MaxBodySize bounds a request body, in bytes. Zero means 1 MiB.
	MaxBodySize int64
	// Logger receives the errors the handler hides from clients (a log
	// that cannot be written). Nil means nothing is logged.
	Logger *slog.Logger
}

// Handler serves the admin API's POST /purge (DESIGN.md, "Admin API"): a
// JSON Request in, 200 and a JSON Result out. A body that is empty,
// malformed, has an unknown field, is too large, or asks for an invalid or
// empty purge gets 400 with {"error": "..."} saying why, and nothing is
// purged; another method gets 405; a closed Index 503; a failure to record
// the purge 500. A purge recorded here that the fleet's Bus did not
// acknowledge (*PublishError) gets 200 with a "warning" beside the Result.
// Content-Type is not checked, so `curl -d` works. The handler does not look
// at the path (mount it at /purge) nor at credentials (wrap it in
// RequireToken). It is safe for concurrent use.
type Handler struct {
	purger  Purger
	maxBody int64
	logger  *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a Handler configured by cfg.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	switch {
	case cfg.Purger == nil:
		return nil, errors.New("purge: HandlerConfig.Purger is nil")
	case cfg.MaxBodySize < 0:
		return nil, fmt.Errorf("purge: HandlerConfig.MaxBodySize %d is negative", cfg.MaxBodySize)
	}
	h := &Handler{purger: cfg.Purger, maxBody: cmp.Or(cfg.MaxBodySize, 1<<20), logger: cfg.Logger}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use POST", r.Method))
		return
	}
	req, err := decodeRequest(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.ServeRequest(w, r, req)
}

// ServeRequest records req, a purge already decoded (such as the PURGE
// method's single URL), and answers as ServeHTTP does: 200 and a Result,
// with a "warning" when the fleet's Bus did not acknowledge it; 400 for an
// invalid purge; 503 when the Index is closed; 500 when recording failed.
func (h *Handler) ServeRequest(w http.ResponseWriter, r *http.Request, req Request) {
	rec, err := h.purger.Purge(r.Context(), req)
	if ve, ok := errors.AsType[*ValidationError](err); ok {
		writeError(w, http.StatusBadRequest, ve.Reason)
		return
	}
	if errors.Is(err, ErrClosed) {
		writeError(w, http.StatusServiceUnavailable, "the node is shutting down")
		return
	}
	if pe, ok := errors.AsType[*PublishError](err); ok {
		h.logger.Warn("purge: in force here but not published to the fleet", "id", pe.ID, "queued", pe.Queued, "err", pe.Err)
		warning := "in force on this node only: the purge bus did not acknowledge it; it is queued and retried (see the node's log)"
		if !pe.Queued {
			warning = "in force on this node only: the purge bus did not acknowledge it and its queue is full; purge again once the bus is back"
		}
		writeJSON(w, http.StatusOK, Result{ID: rec.ID, Bans: len(rec.Bans), Purged: rec.Purged, Warning: warning})
		return
	}
	if err != nil {
		if r.Context().Err() == nil {
			h.logger.Error("purge: recording a purge failed", "err", err)
		}
		writeError(w, http.StatusInternalServerError, "the purge could not be recorded; see the node's log")
		return
	}
	writeJSON(w, http.StatusOK, Result{ID: rec.ID, Bans: len(rec.Bans), Purged: rec.Purged})
}

// decodeRequest reads one JSON object, and nothing after it, into a
// Request. Its errors are fit to show the client.
func decodeRequest(body io.Reader) (Request, error) {
	var req Request
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, describeJSONError(err)
	}
	switch _, err := dec.Token(); {
	case err == io.EOF:
	case errors.As(err, new(*http.MaxBytesError)):
		return Request{}, describeJSONError(err)
	default:
		return Request{}, errors.New("malformed JSON: data after the object")
	}
	return req, nil
}

// describeJSONError turns a decoding error into words for the client.
func describeJSONError(err error) error {
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return fmt.Errorf("body larger than %d bytes", mbe.Limit)
	}
	if ute, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if ute.Field == "" {
			return fmt.Errorf("body must be a JSON object, not %s", ute.Value)
		}
		return fmt.Errorf("field %q: want %s, got %s", ute.Field, ute.Type, ute.Value)
	}
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("empty body: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("malformed JSON: unexpected end of body")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("malformed JSON at byte %d: %v", se.Offset, se)
	}
	// Unknown fields (DisallowUnknownFields) have no type of their own.
	return fmt.Errorf("malformed request: %v", err)
}

// writeJSON answers with status and v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// errorBody is the body of every error answer.
type errorBody struct {
	Error string `json:"error"`
}

// writeError answers with status and {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}
