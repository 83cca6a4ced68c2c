/**
 * Node and cluster ids travel in every handshake and name members in the API, metrics labels and
 * log lines, so they are short and made of characters that need no escaping anywhere.
 */
export const MAX_ID_LENGTH = 64;
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const ID_RULE = `1 to ${MAX_ID_LENGTH} characters of A-Z a-z 0-9 . _ -, starting with a letter or digit`;

export function isValidId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}
