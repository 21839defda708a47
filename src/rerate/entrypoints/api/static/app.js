// rerate web UI: confirmations and live job progress (no framework: the pages are server-rendered).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

async function followJob(element) {
  const id = element.dataset.job;
  for (;;) {
    const response = await fetch(`/api/jobs/${id}`, { credentials: "same-origin" });
    if (!response.ok) return;
    const job = await response.json();
    const bar = element.querySelector("progress");
    const text = element.querySelector(".progress-text");
    const { days_done, days_total, xdrs_read, unit } = job.progress;
    if (bar && days_total) { bar.max = days_total; bar.value = days_done; }
    if (text) text.textContent = `${job.state}: ${days_done} of ${days_total || "?"} ${unit}, ${xdrs_read.toLocaleString()} XDRs read`;
    if (job.finished) { window.location.reload(); return; }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
document.querySelectorAll("[data-job]").forEach(followJob);
