// Outpost demo: fetch each asset through the edge and show how the edge
// answered (Cache-Status, RFC 9211) and the response's Age.
const assets = [
  "/css/site.css",
  "/js/app.js",
  "/img/logo.png",
  "/fonts/outpost-icons.ttf",
  "/media/big.bin",
  "/api/time",
];

async function probe(path) {
  const resp = await fetch(path, { cache: "no-store", method: "HEAD" });
  return {
    path,
    status: resp.status,
    cacheStatus: resp.headers.get("Cache-Status") || "",
    age: resp.headers.get("Age") || "",
  };
}

async function refresh() {
  const rows = await Promise.all(assets.map(probe));
  const tbody = document.getElementById("assets");
  tbody.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    for (const v of [r.path, r.status, r.cacheStatus, r.age]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    tr.className = /; hit/.test(r.cacheStatus) ? "hit" : "miss";
    return tr;
  }));
}

document.getElementById("again").addEventListener("click", refresh);
refresh();
