// relove console: the little behaviour htmx does not cover. No inline scripts anywhere (the
// CSP forbids them); every value read from the page is data, written back as text only.
(function () {
  "use strict";

  function each(root, selector, fn) {
    if (root.matches && root.matches(selector)) fn(root);
    root.querySelectorAll(selector).forEach(fn);
  }

  // A login link page: press the button for the person (a prefetch never runs scripts).
  function autosubmit(form) {
    if (form.dataset.submitted) return;
    form.dataset.submitted = "1";
    form.requestSubmit ? form.requestSubmit() : form.submit();
  }

  // Plain forms that ask before doing something irreversible.
  function confirmable(form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }

  // Charts (uPlot): data-chart='{"x": ["2026-01-01", …], "y": [3, …]}' or series "ys".
  function chart(el) {
    if (el.dataset.drawn || typeof uPlot === "undefined") return;
    el.dataset.drawn = "1";
    var data = JSON.parse(el.dataset.chart);
    var xs = data.x.map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000; });
    var ys = data.ys || [{ label: el.dataset.label || "", values: data.y }];
    var colors = ["#2f6f4f", "#c2410c", "#1d4ed8", "#7c3aed"];
    var series = [{}].concat(ys.map(function (s, i) {
      return { label: s.label, stroke: colors[i % colors.length], width: 2,
               fill: i === 0 && ys.length === 1 ? "rgba(47,111,79,0.12)" : undefined };
    }));
    var opts = { width: Math.max(el.clientWidth, 280), height: 240, series: series,
                 scales: { x: { time: true } }, legend: { show: ys.length > 1 } };
    var plot = new uPlot(opts, [xs].concat(ys.map(function (s) { return s.values; })), el);
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(el.clientWidth, 280), height: 240 });
    });
  }

  // Live progress of a broadcast (Server-Sent Events): each "progress" event carries the
  // stats as JSON; elements with data-field="sent" etc. show them as text.
  function progress(el) {
    if (el.dataset.listening || typeof EventSource === "undefined") return;
    el.dataset.listening = "1";
    var source = new EventSource(el.dataset.sse);
    source.addEventListener("progress", function (e) {
      var stats = JSON.parse(e.data);
      el.querySelectorAll("[data-field]").forEach(function (f) {
        var v = stats[f.dataset.field];
        f.textContent = v === null || v === undefined ? "—" : String(v);
      });
      el.querySelectorAll("progress").forEach(function (p) {
        p.max = Math.max(stats.targeted || 0, 1);
        p.value = stats.done || 0;
      });
      if (stats.final) {
        source.close();
        // the page was drawn while sending: draw it again with the results and actions
        window.location.reload();
      }
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) el.dataset.listening = "";
    });
  }

  // Markers editor: the value's type picks the input (text, number, true/false, JSON).
  function typedValue(select) {
    var form = select.form;
    function sync() {
      form.querySelectorAll("[data-kind]").forEach(function (f) {
        var on = f.dataset.kind === select.value;
        f.classList.toggle("hidden", !on);
        f.querySelectorAll("input,select,textarea").forEach(function (i) { i.disabled = !on; });
      });
    }
    select.addEventListener("change", sync);
    sync();
  }

  // Actions on "the filter": forms and links take the filter as typed in #filter, even before
  // the page was reloaded with it.
  function currentFilter() {
    var input = document.getElementById("filter");
    return input ? input.value : null;
  }
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.matches || !form.matches("form[data-sync-filter]")) return;
    var value = currentFilter();
    var hidden = form.querySelector('input[name="filter"]');
    if (value !== null && hidden) hidden.value = value;
  }, true);
  document.addEventListener("click", function (e) {
    var link = e.target.closest ? e.target.closest("a[data-filter-href]") : null;
    var value = currentFilter();
    if (link && value !== null) {
      link.href = link.dataset.filterHref + "?filter=" + encodeURIComponent(value);
    }
  }, true);

  // A form that sends something (live chat): empty it once the server took it.
  document.addEventListener("htmx:afterRequest", function (e) {
    var form = e.target;
    var status = e.detail.xhr ? e.detail.xhr.status : 0;
    if (form.matches && form.matches("form[data-reset-on-success]") && status >= 200 && status < 300) {
      form.reset();
    }
  });

  function init(root) {
    each(root, "form[data-autosubmit]", autosubmit);
    each(root, "form[data-confirm]", confirmable);
    each(root, "[data-chart]", chart);
    each(root, "[data-sse]", progress);
    each(root, "select[data-kind-select]", typedValue);
  }

  function start() {
    if (window.htmx) window.htmx.onLoad(init); else init(document.body);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
