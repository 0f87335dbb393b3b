// The service's own OpenAPI document, read once: the forms take their choices (activations,
// optimizers, generator kinds, ...) and the API's defaults from it, so they list what this
// service accepts rather than a copy that could drift.
import { api } from "./api.js";

let loading = null;

/** The OpenAPI document's component schemas, by name. */
export async function schemas() {
  if (!loading) {
    loading = api("openapi.json").then((document) => document.components.schemas);
    loading.catch(() => {
      loading = null;
    });
  }
  return loading;
}

/** A property of a component schema, with a nullable one's non-null branch merged in. */
export function property(all, schemaName, name) {
  const found = all[schemaName]?.properties?.[name] || {};
  const branch = (found.anyOf || []).find((option) => option.type !== "null") || {};
  const reference = (found.$ref || branch.$ref || "").split("/").pop();
  return { ...(reference ? all[reference] : {}), ...branch, ...found };
}

/** The `enum` of a property (or of the schema it refers to), or []. */
export function choices(all, schemaName, name) {
  return property(all, schemaName, name).enum || [];
}
