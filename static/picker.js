// One picker for every lookup (foreign key) field, on forms and list filters alike.
//
// The server renders a plain text input of the id (`input.picker`), which works without
// JavaScript. Here it becomes a hidden input holding the id plus a combobox the user types in:
// options come ranked from the field's lookup route (exact code or id, then prefix, then
// contains), a page at a time ("more results"), each saying what it belongs to. Arrows move,
// Enter picks and never submits the form, Escape closes; what is shown is always what is sent.
(() => {
  "use strict";
  const DELAY_MS = 120;
  let counter = 0;

  if (!document.querySelector('link[href="/static/picker.css"]')) {
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = "/static/picker.css";
    document.head.append(css);
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    node.append(...children);
    return node;
  }

  class Picker {
    constructor(input) {
      const n = ++counter;
      this.hidden = input;
      this.url = input.dataset.pickerUrl;
      this.texts = {more: input.dataset.pickerMore, none: input.dataset.pickerNone, denied: input.dataset.pickerDenied};
      this.label = input.dataset.pickerLabel || input.value;
      this.owner = input.dataset.pickerOwner || "";
      this.denied = false;
      this.items = [];
      this.active = -1;
      this.query = "";
      this.offset = 0;
      this.seq = 0;

      this.box = el("input", {
        type: "text", id: `${input.id}-pick`, class: "picker-box", role: "combobox", autocomplete: "off",
        spellcheck: "false", "aria-autocomplete": "list", "aria-expanded": "false",
        "aria-controls": `picker-list-${n}`, placeholder: input.placeholder || "",
      });
      if (input.getAttribute("aria-describedby")) this.box.setAttribute("aria-describedby", input.getAttribute("aria-describedby"));
      if (input.required) this.box.required = true;
      this.box.value = this.label;
      this.list = el("ul", {id: `picker-list-${n}`, class: "picker-list", role: "listbox"});
      this.list.hidden = true;
      this.status = el("span", {class: "picker-owner", "aria-live": "polite"});
      this.wrap = el("span", {class: "picker-wrap"});
      input.replaceWith(this.wrap);
      input.type = "hidden";
      input.required = false;
      this.wrap.append(this.box, input, this.list, this.status);
      const label = document.querySelector(`label[for="${input.id}"]`);
      if (label) label.htmlFor = this.box.id;
      const current = this.wrap.parentElement.querySelector(".picker-current");
      if (current) current.hidden = true;
      this.showOwner(this.owner);

      this.box.addEventListener("input", () => this.typed());
      this.box.addEventListener("keydown", (e) => this.key(e));
      this.box.addEventListener("blur", () => setTimeout(() => this.settle(), 150));
      this.box.addEventListener("focus", () => this.box.select());
      this.list.addEventListener("mousedown", (e) => e.preventDefault());  // keep the focus in the box
      this.list.addEventListener("click", (e) => {
        const li = e.target.closest("li[data-index]");
        if (li) this.choose(Number(li.dataset.index));
      });
    }

    showOwner(text) {
      this.status.textContent = text ? `↳ ${text}` : "";
    }

    typed() {
      if (this.denied) { this.hidden.value = this.box.value.trim(); return; }
      clearTimeout(this.timer);
      if (!this.box.value.trim()) {
        this.pick("", "", "");
        this.close();
        return;
      }
      this.timer = setTimeout(() => this.fetch(this.box.value.trim(), 0), DELAY_MS);
    }

    async fetch(query, offset) {
      const seq = ++this.seq;
      const url = `${this.url}?q=${encodeURIComponent(query)}&offset=${offset}`;
      let res;
      try {
        res = await fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      } catch {
        return;
      }
      if (seq !== this.seq) return;  // an older keystroke's answer arrived late
      if (res.status === 403) {
        this.denied = true;
        this.hidden.value = this.box.value.trim();
        this.render([], false, this.texts.denied);
        return;
      }
      if (!res.ok) return;
      const data = await res.json();
      if (seq !== this.seq) return;
      this.query = query;
      this.offset = offset + data.options.length;
      this.ownerTitle = data.owner_title || "";
      const items = offset ? this.items.concat(data.options) : data.options;
      this.render(items, data.more, items.length ? "" : this.texts.none, offset ? offset : 0);
    }

    render(items, more, message, focusIndex = 0) {
      this.items = items;
      this.more = more;
      const rows = items.map((o, i) => {
        const li = el("li", {id: `${this.list.id}-${i}`, role: "option", "data-index": String(i), "aria-selected": "false"},
          el("span", {class: "picker-text"}, o.text));
        if (o.detail) li.append(el("span", {class: "picker-detail"}, o.detail));
        if (o.owner) li.append(el("span", {class: "picker-belongs"}, `${this.ownerTitle ? this.ownerTitle + ": " : "↳ "}${o.owner}`));
        return li;
      });
      if (more) {
        rows.push(el("li", {id: `${this.list.id}-more`, role: "option", class: "picker-more", "data-index": String(items.length),
          "aria-selected": "false"}, this.texts.more || "…"));
      }
      if (message) rows.push(el("li", {class: "picker-empty", role: "presentation"}, message));
      this.list.replaceChildren(...rows);
      this.open();
      this.move(items.length || more ? Math.min(focusIndex, items.length - (more ? 0 : 1)) : -1, true);
    }

    open() {
      this.list.hidden = false;
      this.box.setAttribute("aria-expanded", "true");
    }

    close() {
      this.list.hidden = true;
      this.box.setAttribute("aria-expanded", "false");
      this.box.removeAttribute("aria-activedescendant");
      this.active = -1;
    }

    get count() {
      return this.items.length + (this.more ? 1 : 0);
    }

    move(index, absolute = false) {
      const total = this.count;
      if (!total) { this.active = -1; return; }
      this.active = absolute ? index : (this.active + index + total) % total;
      this.list.querySelectorAll("li[role=option]").forEach((li, i) => {
        const on = i === this.active;
        li.setAttribute("aria-selected", String(on));
        li.classList.toggle("active", on);
        if (on) {
          this.box.setAttribute("aria-activedescendant", li.id);
          li.scrollIntoView({block: "nearest"});
        }
      });
    }

    key(e) {
      const open = !this.list.hidden;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        if (!open) { this.fetch(this.box.value.trim() === this.label ? "" : this.box.value.trim(), 0); return; }
        this.move(e.key === "ArrowDown" ? 1 : -1);
      } else if (e.key === "Enter") {
        e.preventDefault();  // a picker never submits its form
        if (open && this.active >= 0) this.choose(this.active);
      } else if (e.key === "Escape") {
        if (open) { e.preventDefault(); this.close(); }
      } else if (e.key === "Tab") {
        this.close();
      }
    }

    choose(index) {
      if (index === this.items.length && this.more) {
        this.fetch(this.query, this.offset);
        return;
      }
      const o = this.items[index];
      if (!o) return;
      this.pick(o.value, o.label, o.owner ? `${this.ownerTitle ? this.ownerTitle + ": " : ""}${o.owner}` : "");
      this.close();
    }

    pick(value, label, owner) {
      const changed = this.hidden.value !== value;
      this.hidden.value = value;
      this.label = label;
      this.box.value = label;
      this.showOwner(owner);
      if (changed) this.hidden.dispatchEvent(new Event("change", {bubbles: true}));
    }

    settle() {
      // Leaving the box: what it shows goes back to what will be sent.
      if (document.activeElement === this.box) return;
      this.close();
      if (!this.denied && this.box.value !== this.label) this.box.value = this.box.value.trim() ? this.label : "";
    }
  }

  document.querySelectorAll("input.picker[data-picker-url]").forEach((input) => new Picker(input));
})();
