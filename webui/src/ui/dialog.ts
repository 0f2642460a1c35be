// Modal dialogs on the native <dialog> element (focus trap, Escape and ::backdrop for free).

import { h } from "./dom.ts";

let counter = 0;

/** A fresh id for aria-labelledby and label[for]. */
export function uid(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** Open a modal; resolves when it closes (however it closes) and removes it from the page. */
export function openModal(
  dialog: HTMLDialogElement,
  host: HTMLElement = document.body,
): Promise<void> {
  host.append(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        dialog.remove();
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
  });
}

/** A click on the backdrop (outside the box) closes the dialog. */
export function closeOnBackdrop(dialog: HTMLDialogElement): void {
  dialog.addEventListener("click", (event) => {
    if (event.target !== dialog) return;
    const box = dialog.getBoundingClientRect();
    const inside =
      event.clientX >= box.left &&
      event.clientX <= box.right &&
      event.clientY >= box.top &&
      event.clientY <= box.bottom;
    if (!inside) dialog.close();
  });
}

export interface ConfirmOptions {
  title: string;
  text: string;
  confirmLabel: string;
  danger?: boolean;
}

/** "Delete message?" with Cancel / Delete; true when confirmed. */
export async function confirmDialog(options: ConfirmOptions, host?: HTMLElement): Promise<boolean> {
  const titleId = uid("confirm-title");
  const textId = uid("confirm-text");
  let confirmed = false;
  const ok = h(
    "button",
    {
      type: "button",
      class: `btn ${options.danger ? "btn-danger" : "btn-primary"}`,
      "data-testid": "confirm-ok",
    },
    options.confirmLabel,
  );
  const cancel = h(
    "button",
    { type: "button", class: "btn btn-secondary", "data-testid": "confirm-cancel" },
    "Cancel",
  );
  const dialog = h(
    "dialog",
    {
      class: "modal modal-sm",
      "aria-labelledby": titleId,
      "aria-describedby": textId,
      "data-testid": "confirm-dialog",
    },
    h("h2", { class: "modal-title", id: titleId }, options.title),
    h("p", { class: "modal-text", id: textId }, options.text),
    h("div", { class: "modal-actions" }, cancel, ok),
  );
  ok.addEventListener("click", () => {
    confirmed = true;
    dialog.close();
  });
  cancel.addEventListener("click", () => dialog.close());
  closeOnBackdrop(dialog);
  const closed = openModal(dialog, host);
  cancel.focus();
  await closed;
  return confirmed;
}
