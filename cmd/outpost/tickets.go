package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Session tickets (tls.session_tickets).
const (
	defaultTicketRotation = time.Hour
	defaultTicketLifetime = 24 * time.Hour
	// maxTicketLifetime is crypto/tls's own limit on a resumed session's
	// age (TLS 1.3, RFC 8446 §4.6.1's seven days).
	maxTicketLifetime = 7 * 24 * time.Hour
	minTicketRotation = time.Minute
	// ticketCheckEvery is how often the key file is checked for changes.
	ticketCheckEvery = 10 * time.Second
	minTicketSecret  = 32 // bytes
	maxTicketKeys    = 512
)

// ticketSettings is tls.session_tickets, resolved.
type ticketSettings struct {
	file     string // "": crypto/tls's own keys, random per node
	rotation time.Duration
	lifetime time.Duration
}

// ticketKeys keeps the session ticket keys of a tls.Config derived from a
// key file that every node behind the same name shares, so a client that
// DNS moves to another node still resumes its session there.
//
// The file holds secrets, one per line, base64 (openssl rand -base64 32).
// Keys are never written anywhere: each rotation period (an epoch of
// time since 1970) every node derives the same key from the first secret,
// HMAC-SHA256(secret, rotation, epoch), and issues tickets with it. Keys
// of the last lifetime's epochs, and of the next epoch (a peer whose clock
// is ahead), still decrypt, for every secret in the file: an operator
// rotates a secret by putting a new one first and removing the old one a
// lifetime later. The file is checked for changes every ticketCheckEvery;
// a file that no longer reads leaves the keys as they were (and says so in
// the log).
//
// Safe for concurrent use.
type ticketKeys struct {
	cfg *tls.Config
	set ticketSettings
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	secrets [][]byte
	stamp   fileStamp // of the file last read
	epoch   int64     // of the keys in cfg
}

func newTicketKeys(cfg *tls.Config, set ticketSettings, log *slog.Logger, now func() time.Time) (*ticketKeys, error) {
	k := &ticketKeys{cfg: cfg, set: set, log: log, now: now}
	if err := k.Reload(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(set.file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("session ticket key file is readable by other users: whoever reads it can decrypt recorded sessions", "file", set.file, "mode", fi.Mode().Perm())
	}
	return k, nil
}

// Reload reads the key file now and sets the keys it derives. On an
// error the keys stay as they were.
func (k *ticketKeys) Reload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reload()
}

func (k *ticketKeys) reload() error {
	stamp, err := stampOf(k.set.file)
	if err != nil {
		return err
	}
	secrets, err := readTicketSecrets(k.set.file)
	if err != nil {
		return err
	}
	if n := ticketKeyCount(len(secrets), k.set); n > maxTicketKeys {
		return fmt.Errorf("%s: %d secrets make %d keys at this rotation and lifetime (at most %d)", k.set.file, len(secrets), n, maxTicketKeys)
	}
	k.secrets, k.stamp = secrets, stamp
	k.setKeys(k.epochAt(k.now()))
	return nil
}

// refresh re-reads the file if it changed and moves to the current
// epoch's keys.
func (k *ticketKeys) refresh() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if stamp, err := stampOf(k.set.file); err != nil || stamp != k.stamp {
		if err := k.reload(); err != nil {
			k.log.Error("session ticket keys: keeping the keys in use", "err", err)
		} else {
			k.log.Info("session ticket keys: key file reloaded", "file", k.set.file, "secrets", len(k.secrets))
		}
	}
	if e := k.epochAt(k.now()); e != k.epoch {
		k.setKeys(e)
	}
}

// Run keeps the keys current until ctx is done.
func (k *ticketKeys) Run(ctx context.Context) {
	for {
		now := k.now()
		next := time.Unix((k.epochAt(now)+1)*int64(k.set.rotation/time.Second), 0)
		t := time.NewTimer(min(ticketCheckEvery, next.Sub(now)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		k.refresh()
	}
}

func (k *ticketKeys) epochAt(t time.Time) int64 {
	return t.Unix() / int64(k.set.rotation/time.Second)
}

// epochsKept is how many past epochs' keys still decrypt.
func (k *ticketKeys) epochsKept() int { return epochsKept(k.set) }

func epochsKept(set ticketSettings) int {
	return int((set.lifetime + set.rotation - 1) / set.rotation)
}

// ticketKeyCount is how many keys a node holds for n secrets: each
// secret's current, next and kept epochs.
func ticketKeyCount(n int, set ticketSettings) int { return n * (epochsKept(set) + 2) }

// setKeys gives cfg the keys of epoch e: the first secret's key for e
// issues tickets; the others decrypt.
func (k *ticketKeys) setKeys(e int64) {
	keys := make([][32]byte, 0, ticketKeyCount(len(k.secrets), k.set))
	for _, s := range k.secrets {
		keys = append(keys, ticketKey(s, k.set.rotation, e), ticketKey(s, k.set.rotation, e+1))
		for i := 1; i <= k.epochsKept(); i++ {
			keys = append(keys, ticketKey(s, k.set.rotation, e-int64(i)))
		}
	}
	k.cfg.SetSessionTicketKeys(keys)
	k.epoch = e
}

// ticketKey derives the key of one epoch from a secret. The rotation is
// part of it, so nodes that disagree on it share no key rather than
// sharing keys for different periods.
func ticketKey(secret []byte, rotation time.Duration, epoch int64) [32]byte {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "outpost session ticket key\x00%d\x00%d", int64(rotation/time.Second), epoch)
	var key [32]byte
	copy(key[:], m.Sum(nil))
	return key
}

// readTicketSecrets reads a key file: secrets of at least 32 bytes, one
// per line in base64; blank lines and lines starting with # are skipped.
func readTicketSecrets(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var secrets [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			s, err = base64.RawStdEncoding.DecodeString(line)
		}
		if err != nil || len(s) < minTicketSecret {
			return nil, fmt.Errorf("%s: line %d: want a secret of at least %d bytes in base64 (openssl rand -base64 32)", path, i+1, minTicketSecret)
		}
		for _, prev := range secrets {
			if bytes.Equal(prev, s) {
				return nil, fmt.Errorf("%s: line %d: the same secret twice", path, i+1)
			}
		}
		secrets = append(secrets, s)
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%s: no secret in the file", path)
	}
	return secrets, nil
}
