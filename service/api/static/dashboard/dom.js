// Small helpers for building the page from plain DOM nodes (no framework).

/**
 * An element: h("button", { type: "button", onclick }, "Cancel"). Attributes named `on*`
 * are listeners, `dataset` an object of data-* values; children are nodes or strings
 * (null and false are left out).
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "class") element.className = value;
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, value);
  }
  element.append(...children.flat().filter((child) => child !== null && child !== false && child !== undefined));
  return element;
}

/** An SVG element, with attributes set as they are. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children.flat().filter(Boolean));
  return element;
}

/** A number for people: `digits` significant digits, or an em dash for none. */
export function formatNumber(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e6)) return value.toExponential(digits - 1);
  return Number(value.toPrecision(digits)).toString();
}

export function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** A labelled form field: the label, the control, and a slot for the API's error on it. */
export function field(label, control, hint) {
  const id = control.id || `field-${control.name}`;
  control.id = id;
  const error = h("span", { class: "field-error", id: `${id}-error`, role: "alert" });
  control.setAttribute("aria-describedby", `${id}-error`);
  return h("div", { class: "field", dataset: { field: control.name } },
    h("label", { for: id }, label), control, hint ? h("small", {}, hint) : null, error);
}

// Where a request's value was, as the first part of an error's loc.
const LOCATIONS = ["body", "path", "query"];

/**
 * Shows an ApiError's `errors` next to the fields of `form` that they name: each error's
 * `loc` is matched, from its most specific end, to a `data-field` path such as
 * "training.learning_rate". Errors that match no field are listed in the form's summary.
 */
export function showFieldErrors(form, error) {
  clearFieldErrors(form);
  const summary = form.querySelector(".form-errors");
  const unplaced = [];
  for (const item of error.errors || []) {
    const loc = (item.loc || []).filter((part, index) => index > 0 || !LOCATIONS.includes(part));
    let target = null;
    for (let end = loc.length; end > 0 && !target; end -= 1) {
      target = form.querySelector(`[data-field="${CSS.escape(loc.slice(0, end).join("."))}"]`);
    }
    if (target) {
      target.classList.add("invalid");
      target.querySelector(".field-error").textContent = item.msg;
      target.querySelector("input, select, textarea")?.setAttribute("aria-invalid", "true");
    } else {
      unplaced.push(`${loc.join(".") || "request"}: ${item.msg}`);
    }
  }
  if (summary) {
    summary.replaceChildren(h("p", {}, error.message), ...unplaced.map((text) => h("p", {}, text)));
    summary.hidden = false;
  }
}

export function clearFieldErrors(form) {
  for (const target of form.querySelectorAll(".field.invalid")) {
    target.classList.remove("invalid");
    target.querySelector(".field-error").textContent = "";
    target.querySelector("[aria-invalid]")?.removeAttribute("aria-invalid");
  }
  const summary = form.querySelector(".form-errors");
  if (summary) {
    summary.replaceChildren();
    summary.hidden = true;
  }
}
