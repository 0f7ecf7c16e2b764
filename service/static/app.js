// Progress page: poll the job until it is done, then show its result or its errors.
(function () {
  const box = document.getElementById("job");
  if (!box || !box.dataset.job) return;
  const id = box.dataset.job;
  const STATUS = { queued: "排队中", running: "进行中", done: "已完成", failed: "失败", interrupted: "已中断" };
  const text = (s) => { const d = document.createElement("div"); d.textContent = s; return d; };
  async function poll() {
    const r = await fetch(`/api/jobs/${id}`, { credentials: "same-origin" });
    if (!r.ok) return;
    const job = await r.json();
    const status = document.getElementById("job-status");
    status.textContent = (job.status === "failed" && job.kind === "import") ? "未导入" : (STATUS[job.status] || job.status);
    status.dataset.status = job.status;
    const rejected = job.status === "failed" && (job.result || {}).errors;
    document.getElementById("job-message").textContent = rejected ? "文件有错误，已拒绝" : (job.message || "");
    const bar = document.getElementById("job-progress");
    bar.max = job.total || 1; bar.value = job.done;
    document.getElementById("job-count").textContent = `${job.done} / ${job.total}`;
    if (job.status === "done" || job.status === "failed" || job.status === "interrupted") {
      const spinner = box.querySelector(".spinner"); if (spinner) spinner.hidden = true;
      const out = document.getElementById("job-result");
      // A rejected or interrupted import shows its reason, not an empty "0 / 0" bar.
      if (job.status !== "done") document.getElementById("job-bar").hidden = true;
      if (out.dataset.rendered) return;  // the page was rendered after the job had finished
      const res = job.result || {};
      if (res.errors) {
        const more = res.more_errors ? `（另有 ${res.more_errors} 处未列出）` : "";
        const head = text(`文件“${res.file_name || ""}”未导入：发现 ${res.errors.length} 处错误${more}，没有保存任何内容。请修改后重新上传。`);
        head.className = "error"; out.appendChild(head);
        for (const e of res.errors) out.appendChild(text(`${e.row ? `第 ${e.row} 行 ` : ""}${e.column ?? ""} ${e.id ?? ""}：${e.message}`));
      } else if (job.status !== "done") {
        const head = text(job.message || "任务失败"); head.className = "error"; out.appendChild(head);
      } else if (job.kind === "import") {
        out.appendChild(text(`新增 ${res.added}，更新 ${res.updated}，未变 ${res.unchanged}。`));
        for (const w of res.warnings || []) { const n = text(w.message); n.className = "notice"; out.appendChild(n); }
        const a = document.createElement("a"); a.href = `/queue?year=${(res.years || [])[0] || ""}`; a.textContent = "打开审核队列"; out.appendChild(a);
      }
      return;
    }
    setTimeout(poll, 800);
  }
  poll();
})();
