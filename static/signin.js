// The sign-in dialog: a guest name, or a token where the server requires one
// (the dialog says where tokens come from). The same dialog comes back over
// the open chat when a session has expired and cannot be renewed silently, so
// nothing on the page is lost.

import { limits } from "./limits.js";
import { AuthError } from "./session.js";

/** Show the dialog until the user has signed in; resolves once they have. */
export function signIn(session, message = "") {
  const dialog = document.getElementById("sign-in");
  const form = document.getElementById("sign-in-form");
  const notice = document.getElementById("sign-in-message");
  const nameField = document.getElementById("guest-fields");
  const name = document.getElementById("guest-name");
  const tokenField = document.getElementById("token-fields");
  const token = document.getElementById("token");
  const submit = document.getElementById("sign-in-button");
  const { guests, tokens } = session.options;

  name.maxLength = limits.max_name_chars;
  nameField.hidden = !guests;
  tokenField.hidden = !tokens;
  tokenField.open = !guests; // with guests allowed, the token is the less common way in
  tokenField.classList.toggle("only", !guests);
  name.value = session.user?.name ?? name.value;
  token.value = "";
  show(notice, message || (!guests && !tokens ? "This server accepts no sign-in." : ""));

  return new Promise((resolve) => {
    const keepOpen = (event) => event.preventDefault(); // Escape must not leave a dead page
    form.onsubmit = async (event) => {
      event.preventDefault();
      submit.disabled = true;
      try {
        if (token.value.trim()) await session.signInWithToken(token.value);
        else if (guests && name.value.trim()) await session.signInAsGuest(name.value.trim());
        else throw new AuthError(guests ? "Please enter a name." : "Please paste your token.");
        dialog.removeEventListener("cancel", keepOpen);
        dialog.close();
        resolve();
      } catch (error) {
        const refused = error instanceof AuthError;
        show(notice, refused ? error.message : "Cannot reach the server. Please try again.");
        if (refused && token.value.trim()) {
          token.value = ""; // a refused token is no use: make room for the next one
          token.focus();
        }
      } finally {
        submit.disabled = false;
      }
    };
    dialog.addEventListener("cancel", keepOpen);
    if (!dialog.open) dialog.showModal();
    (guests ? name : token).focus();
  });
}

function show(notice, text) {
  notice.textContent = text;
  notice.hidden = !text;
}
