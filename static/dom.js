// Small DOM helpers the views share. User strings only ever go in as text
// (textContent or text nodes), never as HTML.

export const $ = (id) => document.getElementById(id);

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function button(label, className) {
  const node = element("button", className, label);
  node.type = "button";
  return node;
}

/** Scroll `scroller` (and nothing else: not the page) so that `node` sits at the top or the
 * middle of it. Element.scrollIntoView would scroll every scrollable ancestor too. */
export function scrollWithin(scroller, node, block = "start") {
  const offset = node.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
  const centring = block === "center" ? (scroller.clientHeight - node.offsetHeight) / 2 : 0;
  scroller.scrollTop += offset - Math.max(0, centring);
}
