package origin

import "github.com/prometheus/client_golang/prometheus"

// collector exports a group's health and counters at scrape time, from the
// atomics the request path updates anyway: the hot path pays no label lookup.
// Every metric has the constant label pool, so the collectors of several
// pools (and a shield) register side by side.
type collector struct {
	g                                           *group
	up, inFlight, requests, failures, ejections *prometheus.Desc
	retries, skipped, fallbacks                 *prometheus.Desc
	// A bucket pool's, nil for others.
	bucketSigned, bucketCredFailures, bucketRefused, bucketNegative *prometheus.Desc
}

func newCollector(g *group) *collector {
	pool := prometheus.Labels{"pool": g.name}
	server := []string{"server"}
	c := &collector{
		g: g,
		up: prometheus.NewDesc("outpost_origin_up",
			"Whether the server receives traffic (1) or is down by active checks or ejected (0).", server, pool),
		inFlight: prometheus.NewDesc("outpost_origin_in_flight_requests",
			"Requests sent to the server whose response body is not yet closed.", server, pool),
		requests: prometheus.NewDesc("outpost_origin_requests_total",
			"Requests sent to the server, retries included.", server, pool),
		failures: prometheus.NewDesc("outpost_origin_failures_total",
			"Requests to the server that failed: no response, a failed body, or a 502, 503 or 504 from an origin.", server, pool),
		ejections: prometheus.NewDesc("outpost_origin_ejections_total",
			"Times passive health checks ejected the server.", server, pool),
		retries: prometheus.NewDesc("outpost_origin_retries_total",
			"Requests sent again after a failure, by reason: connect (the request never left), stale_connection (lost on a keep-alive connection the server had closed), failure (an idempotent request failed before any response).",
			[]string{"reason"}, pool),
		skipped: prometheus.NewDesc("outpost_origin_retries_skipped_total",
			"Requests that failed before any response and were not sent again, by reason: not_idempotent (a POST or PATCH the server may have acted on), body_not_replayable.",
			[]string{"reason"}, pool),
		fallbacks: prometheus.NewDesc("outpost_origin_fallbacks_total",
			"Requests sent while no server was up: to the least recently failed server of a pool, or to the origin from a shield.", nil, pool),
	}
	if g.bucket != nil {
		c.bucketSigned = prometheus.NewDesc("outpost_origin_bucket_signed_total",
			"Requests to a bucket signed with AWS Signature Version 4.", nil, pool)
		c.bucketCredFailures = prometheus.NewDesc("outpost_origin_bucket_credential_failures_total",
			"Requests to a bucket not sent because no credentials could be had to sign them.", nil, pool)
		c.bucketRefused = prometheus.NewDesc("outpost_origin_bucket_refused_total",
			"Requests answered without asking the bucket: methods other than GET and HEAD (405), the bucket's root (404).", nil, pool)
		c.bucketNegative = prometheus.NewDesc("outpost_origin_bucket_negative_total",
			"403 and 404 responses from a bucket, given the negative TTL.", nil, pool)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.inFlight, c.requests, c.failures, c.ejections, c.retries, c.skipped, c.fallbacks} {
		ch <- d
	}
	if c.g.bucket != nil {
		for _, d := range []*prometheus.Desc{c.bucketSigned, c.bucketCredFailures, c.bucketRefused, c.bucketNegative} {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.g.status() {
		up := 0.0
		if st.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, st.URL)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(st.InFlight), st.URL)
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.Requests), st.URL)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.Failures), st.URL)
		ch <- prometheus.MustNewConstMetric(c.ejections, prometheus.CounterValue, float64(st.Ejections), st.URL)
	}
	for i, reason := range retryReasons {
		ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(c.g.retries.sent[i].Load()), reason)
	}
	for i, reason := range skipReasons {
		ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, float64(c.g.retries.skipped[i].Load()), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.fallbacks, prometheus.CounterValue, float64(c.g.fallbacks.Load()))
	if b := c.g.bucket; b != nil {
		ch <- prometheus.MustNewConstMetric(c.bucketSigned, prometheus.CounterValue, float64(b.signed.Load()))
		ch <- prometheus.MustNewConstMetric(c.bucketCredFailures, prometheus.CounterValue, float64(b.credFailures.Load()))
		ch <- prometheus.MustNewConstMetric(c.bucketRefused, prometheus.CounterValue, float64(b.refused.Load()))
		ch <- prometheus.MustNewConstMetric(c.bucketNegative, prometheus.CounterValue, float64(b.negatives.Load()))
	}
}
