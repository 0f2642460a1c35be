// Static SVG icons (trusted constants, used with fromMarkup).

import { fromMarkup } from "./dom.ts";

const svg = (body: string, size = 20): string =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 24 24" ` +
  `fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" ` +
  `stroke-linejoin="round" aria-hidden="true" focusable="false">${body}</svg>`;

const MARKUP = {
  logo:
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" aria-hidden="true" focusable="false">` +
    `<rect width="32" height="32" rx="9" fill="currentColor"/>` +
    `<path d="M9 11.5A3.5 3.5 0 0 1 12.5 8h7A3.5 3.5 0 0 1 23 11.5v5a3.5 3.5 0 0 1-3.5 3.5H15l-4.2 3.4` +
    `c-.5.4-1.3 0-1.3-.6V20.1A3.5 3.5 0 0 1 9 16.5z" fill="#fff"/>` +
    `<circle cx="13" cy="14" r="1.4" fill="currentColor"/><circle cx="16" cy="14" r="1.4" ` +
    `fill="currentColor"/><circle cx="19" cy="14" r="1.4" fill="currentColor"/></svg>`,
  signOut: svg(
    `<path d="M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4"/><path d="m16 17 5-5-5-5"/><path d="M21 12H9"/>`,
    18,
  ),
  alert: svg(
    `<circle cx="12" cy="12" r="10"/><path d="M12 8v4"/><path d="M12 16h.01"/>`,
    18,
  ),
  clock: svg(`<circle cx="12" cy="12" r="10"/><path d="M12 6v6l4 2"/>`, 18),
  info: svg(`<circle cx="12" cy="12" r="10"/><path d="M12 16v-4"/><path d="M12 8h.01"/>`, 18),
  back: svg(`<path d="m15 18-6-6 6-6"/>`),
  users: svg(
    `<path d="M16 21v-2a4 4 0 0 0-4-4H6a4 4 0 0 0-4 4v2"/><circle cx="9" cy="7" r="4"/>` +
      `<path d="M22 21v-2a4 4 0 0 0-3-3.87"/><path d="M16 3.13a4 4 0 0 1 0 7.75"/>`,
  ),
  send: svg(`<path d="M22 2 11 13"/><path d="M22 2 15 22l-4-9-9-4z"/>`),
  plus: svg(`<path d="M12 5v14"/><path d="M5 12h14"/>`, 18),
  edit: svg(
    `<path d="M12 20h9"/><path d="M16.5 3.5a2.12 2.12 0 0 1 3 3L7 19l-4 1 1-4z"/>`,
    16,
  ),
  trash: svg(
    `<path d="M3 6h18"/><path d="M19 6v14a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V6"/>` +
      `<path d="M8 6V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2"/>`,
    16,
  ),
  close: svg(`<path d="M18 6 6 18"/><path d="m6 6 12 12"/>`, 18),
  checkCircle: svg(`<circle cx="12" cy="12" r="10"/><path d="m8 12.5 2.7 2.7L16 10"/>`, 28),
  copy: svg(
    `<rect x="9" y="9" width="12" height="12" rx="2"/>` +
      `<path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1"/>`,
    16,
  ),
  shield: svg(`<path d="M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z"/><path d="m9 12 2 2 4-4"/>`, 18),
  arrowDown: svg(`<path d="M12 5v14"/><path d="m19 12-7 7-7-7"/>`, 18),
  pending: svg(`<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/>`, 14),
  check: svg(`<path d="M20 6 9 17l-5-5"/>`, 14),
  ban: svg(`<circle cx="12" cy="12" r="9"/><path d="m5.7 5.7 12.6 12.6"/>`, 14),
  retry: svg(`<path d="M3 12a9 9 0 1 0 3-6.7L3 8"/><path d="M3 3v5h5"/>`, 14),
  paperclip: svg(
    `<path d="m21.44 11.05-9.19 9.19a6 6 0 0 1-8.49-8.49l8.57-8.57A4 4 0 1 1 18 8.84l-8.59 8.57` +
      `a2 2 0 0 1-2.83-2.83l8.49-8.48"/>`,
  ),
  file: svg(
    `<path d="M14.5 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V7.5z"/>` +
      `<path d="M14 2v6h6"/><path d="M8 13h8"/><path d="M8 17h5"/>`,
    22,
  ),
  download: svg(
    `<path d="M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4"/><path d="m7 10 5 5 5-5"/>` +
      `<path d="M12 15V3"/>`,
    18,
  ),
  external: svg(
    `<path d="M15 3h6v6"/><path d="M10 14 21 3"/>` +
      `<path d="M18 13v6a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h6"/>`,
    18,
  ),
  image: svg(
    `<rect x="3" y="3" width="18" height="18" rx="2"/><circle cx="9" cy="9" r="2"/>` +
      `<path d="m21 15-3.09-3.09a2 2 0 0 0-2.82 0L6 21"/>`,
    22,
  ),
  upload: svg(`<path d="M12 3v12"/><path d="m7 8 5-5 5 5"/><path d="M5 21h14"/>`, 40),
  phone: svg(
    `<path d="M22 16.92v3a2 2 0 0 1-2.18 2 19.79 19.79 0 0 1-8.63-3.07 19.5 19.5 0 0 1-6-6` +
      `A19.79 19.79 0 0 1 2.12 4.18 2 2 0 0 1 4.11 2h3a2 2 0 0 1 2 1.72c.13.96.36 1.9.7 2.81` +
      `a2 2 0 0 1-.45 2.11L8.09 9.91a16 16 0 0 0 6 6l1.27-1.27a2 2 0 0 1 2.11-.45c.91.34 1.85.57` +
      ` 2.81.7A2 2 0 0 1 22 16.92z"/>`,
  ),
  phoneOff: svg(
    `<path d="M10.68 13.31a16 16 0 0 0 3.41 2.6l1.27-1.27a2 2 0 0 1 2.11-.45c.91.34 1.85.57 2.81.7` +
      `a2 2 0 0 1 1.72 2v3a2 2 0 0 1-2.18 2 19.79 19.79 0 0 1-8.63-3.07 19.42 19.42 0 0 1-3.33-2.67` +
      `m-2.67-3.34a19.79 19.79 0 0 1-3.07-8.63A2 2 0 0 1 4.11 2h3a2 2 0 0 1 2 1.72c.13.96.36 1.9.7` +
      ` 2.81a2 2 0 0 1-.45 2.11L8.09 9.91"/><path d="M23 1 1 23"/>`,
    24,
  ),
  video: svg(`<path d="m22 8-6 4 6 4V8z"/><rect x="2" y="6" width="14" height="12" rx="2"/>`),
  videoOff: svg(
    `<path d="M10.66 6H14a2 2 0 0 1 2 2v2.34l1 1L22 8v8"/>` +
      `<path d="M16 16a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h2"/><path d="m2 2 20 20"/>`,
  ),
  record: svg(`<circle cx="12" cy="12" r="7" fill="currentColor" stroke="none"/>`, 22),
  stopRecord: svg(
    `<rect x="6" y="6" width="12" height="12" rx="2.5" fill="currentColor" stroke="none"/>`,
    22,
  ),
  recordings: svg(
    `<circle cx="12" cy="12" r="9"/>` +
      `<circle cx="12" cy="12" r="3.5" fill="currentColor" stroke="none"/>`,
    18,
  ),
  play: svg(
    `<path d="M8 5.5v13a1 1 0 0 0 1.5.86l10.4-6.5a1 1 0 0 0 0-1.72L9.5 4.64A1 1 0 0 0 8 5.5z" ` +
      `fill="currentColor" stroke="none"/>`,
    18,
  ),
  mic: svg(
    `<rect x="9" y="2" width="6" height="12" rx="3"/><path d="M19 10v2a7 7 0 0 1-14 0v-2"/>` +
      `<path d="M12 19v3"/>`,
  ),
  micOff: svg(
    `<path d="m2 2 20 20"/><path d="M18.89 13.23A7.12 7.12 0 0 0 19 12v-2"/>` +
      `<path d="M5 10v2a7 7 0 0 0 12 5"/><path d="M15 9.34V5a3 3 0 0 0-5.68-1.33"/>` +
      `<path d="M9 9v3a3 3 0 0 0 5.12 2.12"/><path d="M12 19v3"/>`,
  ),
  chat: `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 160 120" aria-hidden="true" focusable="false">` +
    `<rect x="14" y="18" width="96" height="60" rx="18" class="illo-back"/>` +
    `<path d="M38 78v18l20-18z" class="illo-back"/>` +
    `<rect x="52" y="42" width="94" height="56" rx="18" class="illo-front"/>` +
    `<path d="M124 98v16l-18-16z" class="illo-front"/>` +
    `<circle cx="80" cy="70" r="5" class="illo-dot"/><circle cx="99" cy="70" r="5" class="illo-dot"/>` +
    `<circle cx="118" cy="70" r="5" class="illo-dot"/></svg>`,
} as const;

export type IconName = keyof typeof MARKUP;

export function icon(name: IconName, className = "icon"): Element {
  const el = fromMarkup(MARKUP[name]);
  el.setAttribute("class", className);
  return el;
}
