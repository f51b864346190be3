/* "My annotations": edit a previous answer with PATCH /api/annotations/{id}/. */
(function () {
  "use strict";

  const F = window.Flywheel;
  const config = JSON.parse(document.getElementById("annotations-config").textContent);

  for (const form of document.querySelectorAll("form.edit-form")) {
    const status = form.querySelector(".row-status");
    const button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const labels = Array.from(form.querySelectorAll("input[name=labels]:checked")).map(
        (input) => input.value
      );
      if (!labels.length) {
        status.textContent = "Choose at least one label.";
        status.dataset.kind = "error";
        return;
      }
      button.disabled = true;
      status.textContent = "Saving…";
      status.dataset.kind = "info";
      try {
        const id = form.dataset.annotationId;
        const { data } = await F.api(config.apiRoot, "PATCH", "annotations/" + id + "/", {
          labels: labels,
        });
        status.textContent = "Saved: " + data.labels.join(", ");
      } catch (err) {
        status.textContent = "Not saved: " + F.errorText(err);
        status.dataset.kind = "error";
      } finally {
        button.disabled = false;
      }
    });
  }
})();
