// Confirmation before destructive submits: data-confirm on a form or on its submit button.
document.addEventListener("submit", (event) => {
  const text = event.submitter?.dataset.confirm || event.target.dataset.confirm;
  if (text && !window.confirm(text)) event.preventDefault();
});

// "Select all" in list headers.
document.querySelectorAll("input.select-all").forEach((box) => {
  box.addEventListener("change", () => {
    document.querySelectorAll("input[name=ids]").forEach((c) => { c.checked = box.checked; });
  });
});

// Copy buttons: data-copy names the element whose text goes to the clipboard (a key, a command).
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = source.textContent.trim();
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const range = document.createRange();
    range.selectNodeContents(source);
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    document.execCommand("copy");
  }
  button.classList.add("done");
  button.textContent = button.dataset.copied || "✓";
});

// RBAC grid: typing in a search box filters the table at once (rows by their header text,
// role columns by their heading); the form still submits the same filters to the server.
document.querySelectorAll("input[data-filter-rows]").forEach((input) => {
  const table = document.querySelector(input.dataset.filterRows);
  input.addEventListener("input", () => {
    const text = input.value.trim().toLowerCase();
    let group = null, shown = 0;
    const close = () => { if (group) group.hidden = shown === 0; };
    table.querySelectorAll("tbody tr").forEach((row) => {
      if (row.classList.contains("group")) { close(); group = row; shown = 0; return; }
      const head = row.querySelector("th");
      row.hidden = Boolean(text) && !(head && head.textContent.toLowerCase().includes(text));
      if (!row.hidden) shown += 1;
    });
    close();
  });
});
document.querySelectorAll("input[data-filter-cols]").forEach((input) => {
  const table = document.querySelector(input.dataset.filterCols);
  input.addEventListener("input", () => {
    const text = input.value.trim().toLowerCase();
    table.querySelectorAll("thead th.role-col").forEach((th) => {
      const hide = Boolean(text) && !th.textContent.toLowerCase().includes(text);
      const col = th.cellIndex + 1;
      table.querySelectorAll(`tr:not(.group) > :nth-child(${col})`).forEach((cell) => { cell.hidden = hide; });
    });
  });
});

// Reordering rows (a pipeline's steps): drag a row onto another to move it (and the steps it
// runs in parallel with) to that row's place. It submits the same move form the ↑/↓ buttons
// use, so the server renumbers in one transaction and the page comes back with its message.
document.querySelectorAll("tbody[data-reorder]").forEach((body) => {
  let dragged = null;
  body.querySelectorAll("tr[data-move]").forEach((row) => {
    row.addEventListener("dragstart", (e) => { dragged = row; e.dataTransfer.effectAllowed = "move"; });
    row.addEventListener("dragover", (e) => { if (dragged && dragged !== row) { e.preventDefault(); row.classList.add("drop"); } });
    row.addEventListener("dragleave", () => row.classList.remove("drop"));
    row.addEventListener("drop", (e) => {
      e.preventDefault();
      row.classList.remove("drop");
      if (!dragged || dragged === row || dragged.dataset.pos === row.dataset.pos) return;
      const form = dragged.querySelector("td.move form").cloneNode(true);
      form.querySelectorAll("button").forEach((b) => b.remove());
      const to = document.createElement("input");
      Object.assign(to, { type: "hidden", name: "to", value: row.dataset.pos });
      form.append(to);
      form.hidden = true;
      document.body.append(form);
      form.submit();
    });
  });
});
