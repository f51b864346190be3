/* Quality dashboard charts (Chart.js, vendored). Data come from the json_script block. */
(function () {
  "use strict";
  function draw() {
    const node = document.getElementById("quality-chart-data");
    if (!node || !window.Chart) return;
    const data = JSON.parse(node.textContent);
    const consensus = document.getElementById("consensus-chart");
    if (consensus && data.has_consensus) {
      new window.Chart(consensus, {
        type: "bar",
        data: {
          labels: data.annotators,
          datasets: [{
            label: "Agreement with the consensus",
            data: data.consensus.map(function (v) { return v === null ? null : v * 100; }),
            backgroundColor: "#4c78a8",
          }],
        },
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: { y: { min: 0, max: 100, title: { display: true, text: "%" } } },
        },
      });
    }
    const gold = document.getElementById("gold-chart");
    if (gold && data.gold.length) {
      const days = Array.from(new Set(data.gold.flatMap(function (s) {
        return s.points.map(function (p) { return p.date; });
      }))).sort();
      const palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d"];
      new window.Chart(gold, {
        type: "line",
        data: {
          labels: days,
          datasets: data.gold.map(function (series, i) {
            const byDay = Object.fromEntries(series.points.map(function (p) { return [p.date, p.accuracy * 100]; }));
            return {
              label: series.annotator,
              data: days.map(function (d) { return d in byDay ? byDay[d] : null; }),
              borderColor: palette[i % palette.length],
              backgroundColor: palette[i % palette.length],
              spanGaps: true,
              pointRadius: 4,
              clip: false,
            };
          }),
        },
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: { y: { min: 0, max: 100, title: { display: true, text: "% correct on gold" } } },
        },
      });
    }
    document.body.dataset.chartsReady = "1";
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
