// Placeholder until the view is built.
export async function render(root) {
  root.textContent = "Not built yet.";
}
