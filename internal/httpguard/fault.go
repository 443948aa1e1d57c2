package httpguard

import "net/http"

// fault is why a Conn refused a request.
type fault uint8

const (
	faultNone fault = iota
	faultCLTE
	faultCLDup
	faultCL
	faultTE
	faultTE10
	faultObsFold
	faultBareLF
	faultRequestLine
	faultVersion
	faultAbsoluteForm
	faultHost
	faultChunk
	faultConnect
	faultRequestLineLength
	faultHeaderBytes
	faultHeaderCount
	faultHeaderTimeout
	numFaults
)

// faults describes each fault: its label in outpost_http_rejected_total,
// the status the client gets, and the text of the answer's body.
var faults = [numFaults]struct {
	label  string
	status int
	text   string
}{
	faultNone:              {"none", 0, ""},
	faultCLTE:              {"content_length_and_transfer_encoding", http.StatusBadRequest, "Content-Length with Transfer-Encoding"},
	faultCLDup:             {"content_length_repeated", http.StatusBadRequest, "more than one Content-Length"},
	faultCL:                {"content_length_invalid", http.StatusBadRequest, "invalid Content-Length"},
	faultTE:                {"transfer_encoding_invalid", http.StatusBadRequest, "Transfer-Encoding other than one chunked"},
	faultTE10:              {"transfer_encoding_http10", http.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 request"},
	faultObsFold:           {"obs_fold", http.StatusBadRequest, "folded header line"},
	faultBareLF:            {"bare_lf", http.StatusBadRequest, "line not ended by CRLF"},
	faultRequestLine:       {"request_line_invalid", http.StatusBadRequest, "malformed request line"},
	faultVersion:           {"version", http.StatusBadRequest, "HTTP version other than 1.0 or 1.1"},
	faultAbsoluteForm:      {"absolute_form_host", http.StatusBadRequest, "request target and Host disagree"},
	faultHost:              {"host_invalid", http.StatusBadRequest, "invalid Host"},
	faultChunk:             {"chunked_invalid", http.StatusBadRequest, "malformed chunked body"},
	faultConnect:           {"connect", http.StatusMethodNotAllowed, "CONNECT is not served"},
	faultRequestLineLength: {"request_line_length", http.StatusRequestURITooLong, "request line too long"},
	faultHeaderBytes:       {"header_bytes", http.StatusRequestHeaderFieldsTooLarge, "request header too large"},
	faultHeaderCount:       {"header_count", http.StatusRequestHeaderFieldsTooLarge, "too many header fields"},
	faultHeaderTimeout:     {"header_timeout", http.StatusRequestTimeout, "request header not received in time"},
}
