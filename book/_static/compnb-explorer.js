/* The λ explorer (compnb.chapters.explorer_page): chapter 3's runs by dataset, saliency method, form and λ.
   Reads the data embedded in the page (compnb.explorer's explorer.json), draws the chart with plotly.js
   (served from the site's _static/) and writes the reading, the numbers and the saliency maps for the λ on
   the slider. Jupyter Book loads this file on every page; it does nothing where there is no explorer. */
(function () {
  "use strict";

  const MAP_COLOUR = [178, 24, 43];  // a token's background runs from white (share of S 0) to this (FULL_SHARE)
  const FULL_SHARE = 0.5;  // the same scale for every token, example and run: a spread-out S is pale, a peaked one dark
  const byId = (name) => document.getElementById("compnb-explorer-" + name);
  const fixed = (v) => (v === null || v === undefined ? "–" : v.toFixed(3));
  const lamText = (v) => String(Number(v.toPrecision(6)));

  function signed(v) {  // as compnb.formatting.signed: '+0.012', '-0.012', and '0.000' for what rounds to zero
    const text = Math.abs(v).toFixed(3);
    return text === "0.000" ? text : (v > 0 ? "+" : "-") + text;
  }

  function seedsText(seeds) {  // 'seed 1', 'seeds 1 and 2', 'seeds 1–3'
    if (seeds.length === 1) return "seed " + seeds[0];
    const consecutive = seeds.every((s, i) => i === 0 || s === seeds[i - 1] + 1);
    if (consecutive && seeds.length > 2) return "seeds " + seeds[0] + "–" + seeds[seeds.length - 1];
    return "seeds " + seeds.slice(0, -1).join(", ") + " and " + seeds[seeds.length - 1];
  }

  function intervalText(c) {  // '0.862 [0.850, 0.874]', or the mean alone with one seed
    return c.low === null ? fixed(c.mean) : fixed(c.mean) + " [" + fixed(c.low) + ", " + fixed(c.high) + "]";
  }

  function element(tag, attributes, text) {
    const e = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) e.setAttribute(key, value);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function rgba(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function shade(score) {  // background ∝ the token's share of S (full at FULL_SHARE), text black or white, whichever contrasts more
    const share = Math.min(1, score / FULL_SHARE);
    const rgb = MAP_COLOUR.map((c) => Math.round(255 + share * (c - 255)));
    const linear = rgb.map((c) => { const s = c / 255; return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; });
    const luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
    return {background: "rgb(" + rgb.join(", ") + ")", text: luminance > 0.179 ? "#000000" : "#ffffff"};
  }

  function start() {
    const root = document.getElementById("compnb-explorer");
    if (!root) return;
    const page = JSON.parse(byId("data").textContent);
    const data = page.explorer, names = page.names, colours = page.colours;
    const select = {dataset: byId("dataset"), method: byId("method"), form: byId("form")};
    const sliders = [...document.querySelectorAll(".compnb-explorer-lam")], slider = sliders[0];
    const k = data.k;

    const datasetName = (d) => names.datasets[d.dataset] || d.dataset.toUpperCase();
    const advName = (d) => d.adv_dataset.replace(/^adv_(.*)$/, (_, rest) => "adv-" + rest.toUpperCase());
    const RANK = {accuracy: 1, f1: 2, H_topk: 3};  // legend order: the three measures, then the references
    const METRICS = [
      {key: "accuracy", kind: "accuracy", panel: 0, name: () => "validation accuracy"},
      {key: "f1", kind: "f1", panel: 0, name: (d) => "validation " + d.f1 + " F1"},
      {key: "adv_accuracy", kind: "accuracy", panel: 1, name: (d) => advName(d) + " accuracy"},
      {key: "adv_f1", kind: "f1", panel: 1, name: (d) => advName(d) + " " + d.f1 + " F1"},
      {key: "H_topk", kind: "H_topk", panel: 2, name: () => "H(top-" + k + ") of S after training, nats"},
    ];

    function fill(target, values, label, keep) {
      target.replaceChildren(...values.map((v) => element("option", {value: v}, label(v))));
      if (values.includes(keep)) target.value = keep;
    }

    function current() {
      const dataset = data.datasets[+select.dataset.value];
      const config = dataset.configs.find((c) => c.method === select.method.value && c.form === select.form.value);
      return {dataset, config, point: config.points[+slider.value], baseline: dataset.baseline[config.method]};
    }

    function choose(changed) {  // after a selector changed: the options below it, then the slider's grid
      const dataset = data.datasets[+select.dataset.value];
      if (changed === "dataset") {
        fill(select.method, [...new Set(dataset.configs.map((c) => c.method))], (m) => m, select.method.value);
      }
      if (changed !== "form") {
        const forms = dataset.configs.filter((c) => c.method === select.method.value).map((c) => c.form);
        fill(select.form, forms, (f) => names.forms[f] || f, select.form.value);
      }
      const config = dataset.configs.find((c) => c.method === select.method.value && c.form === select.form.value);
      const lams = config.points.map((p) => p.lam);
      const before = slider.dataset.lam === undefined ? null : +slider.dataset.lam;
      for (const s of sliders) {
        s.max = String(lams.length - 1);
        s.value = String(Math.max(0, lams.indexOf(before)));
        s.disabled = lams.length < 2;
      }
      for (const ticks of document.querySelectorAll(".compnb-explorer-ticks")) {
        ticks.replaceChildren(...lams.map((v) => element("span", {}, lamText(v))));
      }
      render();
    }

    function render() {
      const {dataset, config, point, baseline} = current();
      slider.dataset.lam = String(point.lam);
      for (const s of sliders) s.setAttribute("aria-valuetext", "λ = " + lamText(point.lam));
      for (const v of document.querySelectorAll(".compnb-explorer-lam-value")) v.textContent = lamText(point.lam);
      chart(dataset, config, point, baseline);
      reading(dataset, config, point, baseline);
      numbers(dataset, point, baseline);
      maps(dataset, config, point, baseline);
    }

    function chart(dataset, config, point, baseline) {
      const lams = config.points.map((p) => p.lam);
      const low = Math.log10(Math.min(...lams)), high = Math.log10(Math.max(...lams));
      const pad = Math.max(0.15, 0.08 * (high - low));
      const range = [low - pad, high + pad], ends = [10 ** range[0], 10 ** range[1]];
      const narrow = root.clientWidth < 560;
      const traces = [], shown = new Set();
      const legend = (group) => (shown.has(group) ? false : (shown.add(group), true));
      for (let panel = 0; panel < 3; panel++) {
        const yaxis = panel === 0 ? "y" : "y" + (panel + 1);
        const metrics = METRICS.filter((m) => m.panel === panel);
        for (const m of metrics) {
          const colour = colours[m.kind], base = baseline.values[m.key];
          const band = baseline.confirmation && baseline.confirmation[m.key];
          if (band && band.low !== null) {
            traces.push({x: [ends[0], ends[1], ends[1], ends[0]], y: [band.low, band.low, band.high, band.high],
                         yaxis, mode: "lines", fill: "toself", fillcolor: rgba(colour, 0.15), line: {width: 0},
                         hoverinfo: "skip", showlegend: false, name: "baseline interval"});
          }
          traces.push({x: ends, y: [base, base], yaxis, mode: "lines", line: {color: colour, width: 2, dash: "dot"},
                       name: "baseline", legendgroup: "baseline", showlegend: legend("baseline"), legendrank: 5,
                       hovertemplate: "baseline, " + m.name(dataset) + ": %{y:.3f}<extra></extra>"});
          traces.push({x: lams, y: config.points.map((p) => p.values[m.key]), yaxis, mode: "lines+markers",
                       line: {color: colour, width: 2}, marker: {color: colour, size: 7},
                       name: m.kind === "H_topk" ? "H(top-" + k + ")" : m.kind === "f1" ? dataset.f1 + " F1" : "accuracy",
                       legendgroup: m.kind, showlegend: legend(m.kind), legendrank: RANK[m.kind],
                       hovertemplate: "λ = %{x}, " + m.name(dataset) + ": %{y:.3f}<extra></extra>"});
          const confirmed = config.points.filter((p) => p.confirmation);
          if (confirmed.length) {
            const c = confirmed.map((p) => p.confirmation[m.key]);
            traces.push({x: confirmed.map((p) => p.lam), y: c.map((i) => i.mean), yaxis, mode: "markers",
                         marker: {color: colour, size: 10, symbol: "diamond-open", line: {width: 2}},
                         error_y: {type: "data", symmetric: false, color: colour, thickness: 1.5, width: 4,
                                   array: c.map((i) => (i.high === null ? 0 : i.high - i.mean)),
                                   arrayminus: c.map((i) => (i.low === null ? 0 : i.mean - i.low))},
                         name: "confirmation seeds", legendgroup: "confirmation", showlegend: legend("confirmation"),
                         legendrank: 4,
                         hovertemplate: "λ = %{x}, " + m.name(dataset) + ", confirmation seeds: %{y:.3f}<extra></extra>"});
          }
        }
        traces.push({x: metrics.map(() => point.lam), y: metrics.map((m) => point.values[m.key]), yaxis,
                     mode: "markers", marker: {color: "#000000", size: 17, symbol: "circle-open", line: {width: 2.5}},
                     name: "λ on the slider", legendgroup: "current", showlegend: legend("current"), legendrank: 6,
                     meta: "current", hoverinfo: "skip"});
      }
      const title = (text, panel) => ({text, xref: "paper", x: 0, xanchor: "left", yref: (panel ? "y" + (panel + 1) : "y") + " domain",
                                       y: 1, yanchor: "bottom", showarrow: false, font: {size: 12}});
      const axis = {fixedrange: true, zeroline: false, automargin: true, nticks: 5};
      const layout = {
        grid: {rows: 3, columns: 1, pattern: "coupled", roworder: "top to bottom", ygap: 0.32},
        xaxis: {type: "log", range, tickvals: lams, ticktext: lams.map(lamText), fixedrange: true,
                title: {text: "λ (log scale)", standoff: 4}, automargin: true},
        yaxis: axis, yaxis2: axis, yaxis3: axis,
        annotations: [title(datasetName(dataset) + " validation", 0), title(advName(dataset) + " (" + dataset.adv_n + " examples)", 1),
                      title("top-" + k + " entropy of S after training (nats)", 2)],
        shapes: [{type: "line", xref: "x", yref: "paper", x0: point.lam, x1: point.lam, y0: 0, y1: 1,
                  line: {color: colours.grey, width: 1}}],
        legend: {orientation: "h", x: 0, xanchor: "left", y: 1.04, yanchor: "bottom", font: {size: 12}},
        margin: {l: 8, r: 8, t: narrow ? 72 : 48, b: 8}, height: narrow ? 600 : 560,
        dragmode: false, hovermode: "closest", font: {size: 12},
        paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#ffffff",
      };
      Plotly.react(byId("chart"), traces, layout, {displayModeBar: false, responsive: true});
    }

    function reading(dataset, config, point, baseline) {
      const v = point.values, b = baseline.values;
      const versus = (key) => fixed(v[key]) + " against the baseline's " + fixed(b[key]) +
        (v[key] === null || b[key] === null ? "" : " (" + signed(v[key] - b[key]) + ")");
      let text = "At λ = " + lamText(point.lam) + " (" + datasetName(dataset) + ", " + config.method + " saliency, " +
        config.form + " form; the run at seed " + point.seed + "), validation accuracy is " + versus("accuracy") +
        ", " + advName(dataset) + " accuracy " + versus("adv_accuracy") + ", and the top-" + k + " entropy of S " +
        versus("H_topk") + " nats (at most log " + k + " = " + Math.log(k).toFixed(3) + ").";
      if (point.confirmation && baseline.confirmation) {
        text += " This λ was also trained at the confirmation " + seedsText(point.confirmation.seeds) +
          ": validation accuracy " + intervalText(point.confirmation.accuracy) + " against the baseline's " +
          intervalText(baseline.confirmation.accuracy) + ".";
      } else {
        text += " This λ was trained at the selection seed only, so its differences from the baseline carry no interval.";
      }
      byId("reading").textContent = text;
    }

    function cell(values, confirmation, key, role) {
      const td = element("td", {"data-role": role});
      td.append(element("span", {class: "compnb-explorer-value", "data-value": String(values[key])}, fixed(values[key])));
      if (confirmation) {
        const c = confirmation[key];
        td.append(element("br"), element("small", {class: "compnb-explorer-ci", "data-mean": String(c.mean),
          "data-low": String(c.low), "data-high": String(c.high), "data-seeds": confirmation.seeds.join(",")},
          intervalText(c)));
      }
      return td;
    }

    function numbers(dataset, point, baseline) {
      const head = element("tr");
      head.append(element("th", {scope: "col"}, ""),
                  element("th", {scope: "col", "data-run": point.run}, "λ = " + lamText(point.lam) + ", seed " + point.seed),
                  element("th", {scope: "col", "data-run": baseline.run}, "baseline, seed " + baseline.seed));
      const rows = METRICS.map((m) => {
        const tr = element("tr", {"data-metric": m.key});
        tr.append(element("th", {scope: "row"}, m.name(dataset)), cell(point.values, point.confirmation, m.key, "point"),
                  cell(baseline.values, baseline.confirmation, m.key, "baseline"));
        return tr;
      });
      const n = data.confirmation_seeds.length, where = " and below it, where that configuration was also trained at " +
        "the confirmation " + seedsText(data.confirmation_seeds) + ", ";
      const seeds = n === 0 ? "" : n === 1 ? where + "that run's value" :
        where + "their mean [" + Math.round(100 * data.confidence) + "% interval]";
      const caption = element("caption", {}, "The numbers at λ = " + lamText(point.lam) + " beside the baseline's: the " +
        "selection-seed run" + seeds + ".");
      byId("numbers").replaceChildren(caption, element("thead"), element("tbody"));
      byId("numbers").tHead.append(head);
      byId("numbers").tBodies[0].append(...rows);
    }

    function token(text, score, attributes) {
      const look = shade(score), span = element("span", {class: "compnb-explorer-token", ...attributes}, text);
      span.style.background = look.background;
      span.style.color = look.text;
      return span;
    }

    function mapLine(example, label, role, run) {
      const line = element("div", {class: "compnb-explorer-map", "data-role": role, "data-run": run});
      line.append(element("span", {class: "compnb-explorer-maplabel"}, label));
      example.tokens.forEach((text, i) => {
        const score = example.scores[i];
        line.append(" ", token(text, score, {"data-score": String(score), title: "share of S: " + score.toFixed(3)}));
      });
      return line;
    }

    function maps(dataset, config, point, baseline) {
      const key = element("span", {class: "compnb-explorer-key"}, "Share of S: ");
      for (const share of [0.05, 0.1, 0.25, FULL_SHARE]) {
        key.append(token((share === FULL_SHARE ? "≥ " : "") + share, share), " ");
      }
      byId("maps-title").replaceChildren("Saliency maps of " + config.method + " saliency: each token's share of S " +
        "on fixed validation examples, special tokens included, for the run at the λ on the slider (which moves " +
        "with the one above) and for the baseline. The background's colour is proportional to the share, the " +
        "same scale for every token and run, so a spread-out S looks pale and a peaked one has a few dark tokens; " +
        "hover over a token for its share. ", key);
      const parts = [];
      const missing = (run, what) => element("p", {class: "compnb-explorer-nomaps", "data-role": what},
        "The saliency maps of " + (what === "point" ? "this run" : "the baseline") + " (" + run.run + ") were not " +
        "stored: its folder has no example-maps.json (runs trained before chapter 3 kept the maps have none, " +
        "and they are never recomputed without the run's weights).");
      if (!point.maps) parts.push(missing(point, "point"));
      if (!baseline.maps) parts.push(missing(baseline, "baseline"));
      const examples = point.maps || baseline.maps || [];
      examples.forEach((example, i) => {
        const box = element("div", {class: "compnb-explorer-example", "data-example": String(i)});
        const probability = (run) => (run.maps ? run.maps[i].p_true.toFixed(2) : "–");
        box.append(element("p", {class: "compnb-explorer-example-head"}, (i + 1) + ". true label: " + example.label +
          "; p(" + example.label + ") = " + probability(point) + " at λ = " + lamText(point.lam) + ", " +
          probability(baseline) + " for the baseline"));
        if (point.maps) box.append(mapLine(point.maps[i], "λ = " + lamText(point.lam), "point", point.run));
        if (baseline.maps) box.append(mapLine(baseline.maps[i], "baseline", "baseline", baseline.run));
        parts.push(box);
      });
      byId("maps").replaceChildren(...parts);
    }

    data.datasets.forEach((d, i) => select.dataset.append(element("option", {value: String(i)}, datasetName(d))));
    select.dataset.addEventListener("change", () => choose("dataset"));
    select.method.addEventListener("change", () => choose("method"));
    select.form.addEventListener("change", () => choose("form"));
    for (const s of sliders) {
      s.addEventListener("input", () => { sliders.forEach((other) => { other.value = s.value; }); render(); });
    }
    choose("dataset");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
