// "New group": a name and members picked from the directory -> POST /api/rooms.

import { ApiError, NetworkError } from "../api.ts";
import type { Chat, RoomEntry } from "../chat.ts";
import type { People } from "../people.ts";
import { avatar } from "../ui/avatar.ts";
import { closeOnBackdrop, openModal, uid } from "../ui/dialog.ts";
import { h, setText } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";
import { statusText } from "./people-panel.ts";

const MAX_NAME = 80;

function failureText(error: unknown): string {
  if (error instanceof NetworkError) return "Can't reach the appliance. Try again.";
  if (error instanceof ApiError) {
    if (error.code === "rate_limited") {
      return `Slow down — try again in ${Math.max(1, error.retryAfter ?? 1)}s`;
    }
    if (error.code === "not_found") {
      return "One of those people no longer exists. Reload and try again.";
    }
    if (error.code === "invalid_request") {
      return error.message.charAt(0).toUpperCase() + error.message.slice(1);
    }
  }
  return "The group could not be created. Try again.";
}

/** Show the dialog; resolves with the new room, or null when cancelled. */
export async function newGroupDialog(
  chat: Chat,
  people: People,
  host: HTMLElement,
): Promise<RoomEntry | null> {
  const titleId = uid("new-group-title");
  const nameId = uid("group-name");
  const errorId = uid("group-error");
  let created: RoomEntry | null = null;
  let busy = false;

  const name = h("input", {
    id: nameId,
    class: "input",
    type: "text",
    maxlength: MAX_NAME,
    required: true,
    autocomplete: "off",
    placeholder: "e.g. Weekend plans",
    "data-testid": "group-name",
  });
  const selectedCount = h("span", { class: "member-count", "data-testid": "group-member-count" });
  const everyone = people.list();
  const checkboxes = everyone.map((person) =>
    h("input", {
      type: "checkbox",
      class: "member-check",
      value: person.userId,
      "data-testid": "group-member",
      "data-username": person.username,
    }),
  );
  const options = h(
    "div",
    { class: "member-options", role: "group", "aria-label": "Members" },
    ...everyone.map((person, i) =>
      h(
        "label",
        { class: "member-option" },
        checkboxes[i],
        avatar(person.username, "sm"),
        h(
          "span",
          { class: "member-text" },
          h("span", { class: "person-name" }, person.username),
          h(
            "span",
            { class: `person-status${person.online ? " is-online" : ""}` },
            statusText(person),
          ),
        ),
      ),
    ),
  );
  const noPeople =
    everyone.length === 0
      ? h("p", { class: "empty-text" }, "There is no one else to add yet.")
      : null;
  const errorText = h("span", { class: "alert-text" });
  const error = h(
    "div",
    {
      id: errorId,
      class: "alert alert-error",
      role: "alert",
      "data-testid": "new-group-error",
      hidden: true,
    },
    h("span", { class: "alert-icon" }, icon("alert")),
    errorText,
  );
  const create = h(
    "button",
    { type: "submit", class: "btn btn-primary", "data-testid": "create-group", disabled: true },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    h("span", {}, "Create group"),
  );
  const cancel = h(
    "button",
    { type: "button", class: "btn btn-secondary", "data-testid": "new-group-cancel" },
    "Cancel",
  );
  const form = h(
    "form",
    { class: "modal-form", novalidate: true },
    h(
      "div",
      { class: "modal-head" },
      h("h2", { class: "modal-title", id: titleId }, "New group"),
      h(
        "button",
        {
          type: "button",
          class: "btn btn-ghost btn-icon btn-icon-sm",
          "aria-label": "Close",
          onclick: () => dialog.close(),
        },
        icon("close"),
      ),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { class: "label", for: nameId }, "Group name"),
      name,
    ),
    h(
      "div",
      { class: "field" },
      h("div", { class: "field-head" }, h("span", { class: "label" }, "Members"), selectedCount),
      noPeople ?? options,
    ),
    error,
    h("div", { class: "modal-actions" }, cancel, create),
  );
  const dialog = h(
    "dialog",
    {
      class: "modal",
      "aria-labelledby": titleId,
      "aria-describedby": errorId,
      "data-testid": "new-group-dialog",
    },
    form,
  );

  function chosen(): number[] {
    return checkboxes.filter((c) => c.checked).map((c) => Number(c.value));
  }

  function update(): void {
    const count = chosen().length;
    setText(selectedCount, count === 0 ? "Pick at least one" : `${count} selected`);
    create.disabled = busy || name.value.trim() === "" || count === 0;
  }

  function showError(text: string | null): void {
    error.hidden = text === null;
    setText(errorText, text ?? "");
  }

  form.addEventListener("input", () => {
    showError(null);
    update();
  });
  cancel.addEventListener("click", () => dialog.close());
  closeOnBackdrop(dialog);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (create.disabled) return;
    busy = true;
    create.classList.add("is-busy");
    update();
    try {
      created = await chat.createGroup(name.value.trim(), chosen());
      dialog.close();
    } catch (failure) {
      showError(failureText(failure));
    } finally {
      busy = false;
      create.classList.remove("is-busy");
      update();
    }
  });

  update();
  const closed = openModal(dialog, host);
  name.focus();
  await closed;
  return created;
}
