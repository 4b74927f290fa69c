// Searchable dropdowns for code fields: typing refills the <select> from the table's lookup route.
document.querySelectorAll("input.lookup-search").forEach((input) => {
  const select = document.getElementById(input.dataset.for);
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const res = await fetch(`${input.dataset.url}?q=${encodeURIComponent(input.value)}`, {headers: {Accept: "application/json"}});
      if (!res.ok) return;
      const keep = select.value;
      const options = await res.json();
      select.replaceChildren(new Option("—", ""), ...options.map((o) => new Option(o.text, o.value, false, o.value === keep)));
      if (options.length === 1) select.value = options[0].value;
    }, 200);
  });
});

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
