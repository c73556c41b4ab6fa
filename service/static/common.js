// What the dashboard and the cases page share: element lookup and building, and the JSON call
// that sends a logged-out browser back to the login form. Loaded before each page's own script.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

// An element ("svg:NAME" for SVG) with attributes (`onclick` a listener, `text` the text; null,
// undefined and false left out) and children (nodes, or text).
function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG_NS, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "onclick") node.addEventListener("click", v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The JSON answer of `path` (the login cookie sent); a 401 goes to the login form, another error
// throws with the service's message.
async function getJson(path, init = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...init });
  if (response.status === 401) {
    window.location.href = "/dashboard/login";
    throw new Error("not logged in");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
