/**
 * The character rules of RFC 9110 that both directions apply: tokens (methods, header names) and
 * field values. Requests are decoded as latin1, so their values never hold characters past 0xff;
 * answers are written as latin1, so theirs must not.
 */

/** tchar of RFC 9110 §5.6.2: the characters of a method or a header name. */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TOKEN[c] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = 1;
for (let c = 97; c <= 122; c++) TOKEN[c] = 1;

export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) if (TOKEN[text.charCodeAt(i)] !== 1) return false;
  return true;
}

/** A field value (RFC 9110 §5.5): visible characters, spaces, tabs and obs-text; no CTL, nothing past latin1. */
export function isFieldValue(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 9) || c === 0x7f || c > 0xff) return false;
  }
  return true;
}
