// Package purge invalidates cached objects: it records purges as bans, answers
// on every cache lookup whether a stored object is banned, and removes banned
// objects from storage in the background.
//
// The model is Varnish's ban list. A purge (a Record) is a set of bans issued
// together at one time: exact URLs (every variant of each), canonical URL
// prefixes, surrogate keys (tags), hosts, or everything; hard or soft.
// Accepting one costs nothing in the number of cached objects: the bans are
// appended to a durable log and added to an in-memory index. A stored object
// is banned when a ban matches it and is newer than the object's
// representation: when it was obtained from the origin
// (storage.Meta.ObtainedAt) — for a response from the origin, when the
// request that fetched it left; for a copy fetched from a parent tier, when
// the parent's copy was obtained (Meta.OriginTime). So anything obtained
// after a purge is never affected by it, a response that was on its way
// when the purge came is, and so is an old copy that a parent which had not
// applied the purge yet handed on: each tier catches it whenever the purge
// reaches it, in whatever order the tiers apply it.
//
// Index.Check is what the edge calls on every lookup. The index keeps, for
// each target (a URL, tag, host, prefix, or everything), only the newest hard
// and the newest soft ban, so a lookup is a handful of map loads that never
// scan the ban list, whatever its length, and allocate nothing. With no bans
// it is one atomic load. Index.Newest, as cheap, is what the edge asks before
// a refetch: the newest purge of a URL (by URL, prefix, host, everything, or
// a tag that matched a stored copy of it, which the index remembers for a
// bounded number of URLs), so that it can ask the tier above (a shield that
// may not have applied the purge yet) for a copy no older.
//
// Index.Run walks the storage tier in the background (storage.Walker): it
// deletes the objects hard bans match — unless a refetch has replaced one
// since the walk listed it — and retires bans no stored object predates any
// longer (at the earliest Config.CommitDelay after them), so the ban list
// stays as short as the work still to do. Soft-banned objects stay stored for the edge to serve stale while it
// refetches, up to Config.SoftTTL.
//
// With Config.Dir set, bans survive restarts: each purge is appended to a
// checksummed log and fsynced before it is acknowledged, and the log is loaded
// at start so a restart never brings a purged object back from disk.
//
// Handler serves the admin API's POST /purge, Client speaks it for the
// `outpost purge` command, RequireToken guards the admin listener, and
// ParseTags reads surrogate keys from an origin's response. Index.Apply takes
// a Record issued elsewhere with its original ID and time, idempotently.
//
// Bus carries purges across a fleet over a NATS JetStream stream: it is a
// Purger that records a purge in the Index first (in force and durable
// here), then publishes it; each node applies everyone's purges through a
// durable consumer of its own and reports Ready once it has replayed what
// it missed while down. A purge the stream did not acknowledge stays in
// force here and is queued for publishing again.
//
// The package imports only storage of Outpost (and NATS, for the Bus).
package purge
