package edge

// SetHosts replaces the virtual hosts a Handler serves, for a configuration
// reload without a restart. The new entries are validated as New validates
// Config.Hosts; on error nothing changes. On success, requests routed from
// then on use the new entries, whole: a request never sees half of one set
// and half of the other. Requests already routed finish with the entry they
// found, its Transport included, so the caller must keep the old
// transports working until those requests are done, and may close them
// after. The cache is shared by both sets: an object stored under one is a
// hit under the other when its key is the same (the Key rules of the new
// entry decide the key).
//
// SetHosts is safe for concurrent use with ServeHTTP and with itself; the
// last call wins. hosts is copied; Config.Hosts only holds the first set.
func (h *Handler) SetHosts(hosts []Host) error {
	if len(hosts) == 0 {
		return errNoHosts
	}
	rt, err := newRouter(append([]Host(nil), hosts...))
	if err != nil {
		return err
	}
	h.routes.Store(rt)
	return nil
}

// route returns the entry for a lowercased host name without port, or nil,
// from the current set of hosts.
func (h *Handler) route(name string) *Host {
	return h.routes.Load().route(name)
}
