/**
 * The Date header's value (RFC 9110 §6.6.1: an origin server with a clock sends one), formatted
 * once per second rather than once per response.
 */
let text = '';
let second = -1;

export function httpDateNow(): string {
  const s = Math.floor(Date.now() / 1000);
  if (s !== second) {
    second = s;
    text = new Date(s * 1000).toUTCString();
  }
  return text;
}
