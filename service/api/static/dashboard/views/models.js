// Models: the registry's models with their latest version and aliases.
import { listAll } from "../api.js";
import { formatTime, h } from "../dom.js";

/** `production → v1` badges of a model's aliases, or an em dash for none. */
export function aliasBadges(aliases) {
  const names = Object.keys(aliases || {}).sort();
  if (!names.length) return "—";
  return h("ul", { class: "badges" },
    names.map((name) => h("li", { class: "badge" }, `${name} → v${aliases[name]}`)));
}

export async function render(root) {
  root.append(h("h2", {}, "Models"));
  const models = await listAll("v1/models", { query: { limit: 200 } });
  if (!models.length) {
    root.append(h("p", { class: "panel" },
      "No models yet. A job given a model name registers its weights as the next version of that model when it succeeds: ",
      h("a", { href: "#/jobs" }, "create a job"), "."));
    return;
  }
  root.append(h("div", { class: "panel table-wrap" }, h("table", {},
    h("caption", { class: "muted" }, `${models.length} model${models.length === 1 ? "" : "s"}, by name`),
    h("thead", {}, h("tr", {},
      ["Model", "Latest version", "Aliases", "Created", "Description"].map((label) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, models.map((model) => h("tr", {},
      h("th", { scope: "row" }, h("a", { href: `#/models/${encodeURIComponent(model.name)}` }, model.name)),
      h("td", {}, model.latest_version ? `v${model.latest_version}` : "none"),
      h("td", {}, aliasBadges(model.aliases)),
      h("td", {}, formatTime(model.created_at)),
      h("td", {}, model.description || h("span", { class: "muted" }, "—"))))))));
}
