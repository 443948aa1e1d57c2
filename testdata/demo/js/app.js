// Outpost demo: fetch each asset through the edge every few seconds and
// show how the edge answered (Cache-Status, RFC 9211), the Age of what it
// answered, the Content-Encoding it chose, and how many requests for the
// asset reached the origin.
const assets = [
  "/css/site.css",
  "/js/app.js",
  "/img/logo.png",
  "/fonts/outpost-icons.ttf",
  "/media/big.bin",
  "/api/time",
];

// probe asks the edge for an asset's header (HEAD: the 24 MiB video's body
// is not needed). cache: "no-store" keeps the browser's own cache out of the
// way, so every probe reaches the edge. In that mode a browser adds
// "Cache-Control: no-cache" unless the request has a Cache-Control already,
// and no-cache would make the edge revalidate with the origin every time;
// max-stale=0 asks for nothing more than any client gets (a fresh stored
// response will do), so the edge answers as it would anyone.
async function probe(path) {
  const resp = await fetch(path, {
    method: "HEAD",
    cache: "no-store",
    headers: { "Cache-Control": "max-stale=0" },
  });
  return {
    path,
    status: resp.status,
    cacheStatus: resp.headers.get("Cache-Status") || "",
    age: resp.headers.get("Age") || "",
    encoding: resp.headers.get("Content-Encoding") || "",
  };
}

// originCounts reads the embedded origin's counters (through the edge,
// which passes them on: the origin marks them no-store).
async function originCounts() {
  const resp = await fetch("/origin/stats", { cache: "no-store" });
  const counts = {};
  for (const [key, n] of Object.entries((await resp.json()).requests)) {
    const path = key.slice(key.indexOf(" ") + 1); // "GET /css/site.css"
    counts[path] = (counts[path] || 0) + n;
  }
  return counts;
}

let refreshes = 0;

async function refresh() {
  const rows = await Promise.all(assets.map(probe));
  const counts = await originCounts();
  const tbody = document.getElementById("assets");
  tbody.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    for (const v of [r.path, r.status, r.cacheStatus, r.age, r.encoding || "-", counts[r.path] || 0]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    tr.className = /; hit/.test(r.cacheStatus) ? "hit" : "miss";
    tr.dataset.path = r.path;
    return tr;
  }));
  refreshes++;
  document.getElementById("refreshes").textContent = String(refreshes);
}

let timer = null;
function schedule() {
  clearInterval(timer);
  if (document.getElementById("auto").checked) timer = setInterval(refresh, 3000);
}

document.getElementById("again").addEventListener("click", refresh);
document.getElementById("auto").addEventListener("change", schedule);
refresh();
schedule();
