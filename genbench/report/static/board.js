// genbench leaderboard page: builds the tables, filters and plots from the JSON in #board-data.
// Every string from a result goes in through textContent or setAttribute, never as markup.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("board-data").textContent);
  const board = document.getElementById("board");

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : String(v));
    }
    if (text !== null && text !== undefined) e.textContent = String(text);
    return e;
  }

  // ------------------------------------------------------------------------------------------ filters
  const filters = el("form", { class: "filters", role: "search", "aria-label": "Filter rows" });
  filters.addEventListener("submit", (ev) => ev.preventDefault());
  function select(id, label, all, values) {
    const wrap = el("label", { for: id }, label + " ");
    const s = el("select", { id: id });
    s.appendChild(el("option", { value: "" }, all));
    for (const v of values) s.appendChild(el("option", { value: v }, v));
    s.addEventListener("change", applyFilters);
    filters.appendChild(wrap);
    filters.appendChild(s);
    return s;
  }
  const datasetSelect = select("filter-dataset", "Dataset", "all datasets", data.datasets);
  const protocolSelect = select("filter-protocol", "Protocol", "all protocols", data.protocols);
  const status = el("p", { id: "status", role: "status", "aria-live": "polite" });
  filters.appendChild(status);
  board.appendChild(filters);
  document.getElementById("summary").textContent = data.summary;

  // ------------------------------------------------------------------------------------------- tables
  const sections = [];
  for (const t of data.tables) sections.push(buildTable(t));

  function buildTable(t) {
    const section = el("section", { class: "board-table", "data-dataset": t.dataset });
    section.appendChild(el("h2", null, t.title));
    const table = el("table", { class: "leaderboard", "data-dataset": t.dataset });
    table.appendChild(el("caption", null, "Dataset " + t.dataset + ": click a column header to sort"));

    // one spec per column: how to draw a cell and what to sort by
    const specs = [
      { label: "Entry", title: "what was evaluated", type: "text", dir: "ascending", key: (r) => r.entry,
        cell: entryCell },
      { label: "Protocol", title: "protocol name@version", type: "text", dir: "ascending", key: (r) => r.protocol,
        cell: (r) => el("td", { class: "protocol" }, r.reference ? "reference" : r.protocol) },
      { label: "Seeds", title: "results aggregated; open for each run's provenance", type: "number",
        dir: "descending", key: (r) => r.seeds, cell: provenanceCell },
    ];
    t.columns.forEach((c, j) => specs.push({
      label: c.label, title: c.title, type: "number", metric: c.name,
      dir: c.higher_is_better ? "descending" : "ascending",  // best first on the first click
      key: (r) => r.cells[j].value, cell: (r) => metricCell(r.cells[j]),
    }));
    specs.push(
      { label: "Parameters", title: "number of parameters, mean over the row's runs", type: "number", dir: "ascending",
        key: (r) => r.parameters.value, cell: (r) => costCell(r.parameters) },
      { label: "Training time", title: "mean over the row's runs, on the device each recorded", type: "number",
        dir: "ascending", key: (r) => r.train_seconds.value, cell: (r) => costCell(r.train_seconds) },
      { label: "Samples", title: "the first seed's sample grid; click for the full image", cell: thumbCell });

    const thead = el("thead");
    const headRow = el("tr");
    const tbody = el("tbody");
    const rows = t.rows.map((r, index) => {
      const tr = el("tr", { "data-dataset": r.dataset, "data-protocol": r.protocol, "data-entry": r.entry,
                            class: r.reference ? "reference" : null });
      for (const s of specs) tr.appendChild(s.cell(r));
      tbody.appendChild(tr);
      return { tr: tr, data: r, index: index };
    });
    const state = { column: null, dir: null };
    specs.forEach((s, i) => {
      const th = el("th", { scope: "col", title: s.title, "data-column": i, "data-metric": s.metric || null,
                            class: s.key ? "sortable" : null });
      if (s.key) {
        const button = el("button", { type: "button" }, s.label);
        button.appendChild(el("span", { class: "arrow", "aria-hidden": "true" }));
        button.addEventListener("click", () => sortBy(i));
        th.appendChild(button);
      } else {
        th.textContent = s.label;
      }
      headRow.appendChild(th);
    });
    thead.appendChild(headRow);
    table.appendChild(thead);
    table.appendChild(tbody);

    function sortBy(i) {
      const s = specs[i];
      state.dir = state.column === i ? (state.dir === "ascending" ? "descending" : "ascending") : s.dir;
      state.column = i;
      const sign = state.dir === "ascending" ? 1 : -1;
      const missing = (v) => v === null || v === undefined || (typeof v === "number" && !isFinite(v));
      rows.sort((a, b) => {
        const va = s.key(a.data), vb = s.key(b.data);
        if (missing(va) || missing(vb)) {  // missing values last, in either direction
          return missing(va) === missing(vb) ? a.index - b.index : (missing(va) ? 1 : -1);
        }
        const c = s.type === "number" ? va - vb : String(va).localeCompare(String(vb));
        return c !== 0 ? sign * c : a.index - b.index;
      });
      for (const r of rows) tbody.appendChild(r.tr);
      headRow.querySelectorAll("th").forEach((th, k) => {
        if (k === i) th.setAttribute("aria-sort", state.dir);
        else th.removeAttribute("aria-sort");
      });
    }

    const scroll = el("div", { class: "scroll" });
    scroll.appendChild(table);
    section.appendChild(scroll);
    if (t.notes.length) {
      const ul = el("ul", { class: "notes" });
      for (const n of t.notes) ul.appendChild(el("li", null, n));
      section.appendChild(ul);
    }
    board.appendChild(section);
    return { section: section, rows: rows, dataset: t.dataset };
  }

  function entryCell(r) {
    const title = r.provenance.map((p) => p.map((kv) => kv[0] + ": " + kv[1]).join("\n")).join("\n\n");
    return el("td", { class: "entry", title: title || null }, r.entry);
  }

  function provenanceCell(r) {
    const td = el("td", { class: "num seeds", "data-value": r.seeds });
    if (!r.provenance.length) {
      td.textContent = String(r.seeds);
      return td;
    }
    const details = el("details");
    details.appendChild(el("summary", { title: "provenance of each run" }, String(r.seeds)));
    for (const p of r.provenance) {
      const dl = el("dl");
      for (const [k, v] of p) {
        dl.appendChild(el("dt", null, k));
        dl.appendChild(el("dd", null, v));
      }
      details.appendChild(dl);
    }
    td.appendChild(details);
    return td;
  }

  function metricCell(c) {
    const td = el("td", { class: "num metric" + (c.value === null ? " missing" : "") + (c.best ? " best" : ""),
                          title: c.title, "data-value": c.value === null ? null : String(c.value) });
    if (c.best) td.appendChild(el("strong", null, c.text));
    else td.textContent = c.text;
    return td;
  }

  function costCell(c) {
    return el("td", { class: "num cost" + (c.value === null ? " missing" : ""),
                      "data-value": c.value === null ? null : String(c.value) }, c.text === null ? "–" : c.text);
  }

  function thumbCell(r) {
    const td = el("td", { class: "samples" });
    if (!r.thumbnail) {
      td.textContent = "–";
      return td;
    }
    const a = el("a", { href: r.thumbnail.href, title: "open the full sample grid" });
    a.appendChild(el("img", { src: r.thumbnail.src, alt: r.thumbnail.alt }));
    td.appendChild(a);
    return td;
  }

  // -------------------------------------------------------------------------------------------- plots
  const figures = [];
  if (data.plots.length) {
    const section = el("section", { id: "plots" });
    section.appendChild(el("h2", null, "Plots"));
    for (const p of data.plots) {
      const fig = el("figure", { "data-dataset": p.dataset });
      const a = el("a", { href: p.svg || p.src, title: p.svg ? "open as SVG" : "open the image" });
      a.appendChild(el("img", { src: p.src, alt: p.title, loading: "lazy" }));
      fig.appendChild(a);
      fig.appendChild(el("figcaption", null, p.title));
      section.appendChild(fig);
      figures.push({ figure: fig, dataset: p.dataset });
    }
    board.appendChild(section);
  }

  // ----------------------------------------------------------------------------------------- filtering
  function applyFilters() {
    const ds = datasetSelect.value, pr = protocolSelect.value;
    let shown = 0, total = 0;
    for (const s of sections) {
      let any = false;
      for (const r of s.rows) {
        const ok = (ds === "" || r.data.dataset === ds) && (pr === "" || r.data.protocol === pr);
        r.tr.hidden = !ok;
        if (!r.data.reference) {
          total += 1;
          if (ok) { shown += 1; any = true; }
        }
      }
      // a reference row (e.g. independent pixels) stays beside the entries of its dataset
      for (const r of s.rows) {
        if (r.data.reference) r.tr.hidden = !(any && (ds === "" || r.data.dataset === ds));
      }
      s.section.hidden = !any;
    }
    for (const f of figures) f.figure.hidden = ds !== "" && f.dataset !== ds;
    const entries = (n) => n + (n === 1 ? " entry" : " entries");
    status.textContent = shown === total ? "Showing " + (total === 1 ? "" : "all ") + entries(total) :
      "Showing " + shown + " of " + entries(total) + (shown === 0 ? ": none match the filters" : "");
  }
  applyFilters();
})();
