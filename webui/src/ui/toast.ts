// Small transient notices at the bottom of the screen ("Slow down — try again in 3s").

import { h } from "./dom.ts";
import { icon } from "./icons.ts";

const SHOWN_MS = 5_000;

export interface Toaster {
  element: HTMLElement;
  show(text: string): void;
  dispose(): void;
}

export function toaster(): Toaster {
  const element = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
  const timers = new Map<HTMLElement, number>();

  function remove(toast: HTMLElement): void {
    window.clearTimeout(timers.get(toast));
    timers.delete(toast);
    toast.remove();
  }

  function arm(toast: HTMLElement): void {
    window.clearTimeout(timers.get(toast));
    timers.set(
      toast,
      window.setTimeout(() => remove(toast), SHOWN_MS),
    );
  }

  return {
    element,
    show(text) {
      // The same notice again (e.g. a burst of rate-limited events) just stays up longer.
      for (const toast of timers.keys()) {
        if (toast.dataset.text === text) {
          arm(toast);
          return;
        }
      }
      const toast = h(
        "div",
        { class: "toast", "data-testid": "toast", "data-text": text },
        h("span", { class: "toast-icon" }, icon("info")),
        h("span", { class: "toast-text" }, text),
        h(
          "button",
          {
            type: "button",
            class: "toast-close",
            "aria-label": "Dismiss",
            onclick: () => remove(toast),
          },
          icon("close"),
        ),
      );
      element.append(toast);
      arm(toast);
      while (element.childElementCount > 3) remove(element.firstElementChild as HTMLElement);
    },
    dispose() {
      for (const timer of timers.values()) window.clearTimeout(timer);
      timers.clear();
    },
  };
}
