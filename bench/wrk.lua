-- wrk script for bench/run.sh. With WRK_MANY=N it requests N distinct
-- 1 KiB objects round-robin (/obj/1k/k00000 ...); otherwise it defines no
-- request() so wrk keeps its pre-built single request. done() prints one
-- line for rig measure.
local many = tonumber(os.getenv("WRK_MANY") or "0")
local reqs, i = {}, 0
if many > 0 then
  function init(args)
    for k = 0, many - 1 do -- built here, once wrk has set the Host header
      reqs[k + 1] = wrk.format("GET", string.format("/obj/1k/k%05d", k))
    end
  end
  function request()
    i = i % many + 1
    return reqs[i]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RIG requests=%d secs=%.3f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3,
    e.connect + e.read + e.write + e.status + e.timeout))
end
