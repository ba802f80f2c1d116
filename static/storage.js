// JSON in Web Storage, and news of what the page's other tabs write there
// (the browser fires `storage` in every other tab of the same origin).

export function readJson(key, storage = localStorage) {
  try {
    return JSON.parse(storage.getItem(key) ?? "null");
  } catch {
    return null;
  }
}

export function writeJson(key, value, storage = localStorage) {
  storage.setItem(key, JSON.stringify(value));
}

/** Call `changed(value)` whenever another tab of this browser writes `key` in localStorage. */
export function watchOtherTabs(key, changed) {
  window.addEventListener("storage", (event) => {
    if (event.storageArea !== localStorage || event.key !== key) return;
    try {
      changed(JSON.parse(event.newValue ?? "null"));
    } catch {
      // not JSON: not written by this page
    }
  });
}
