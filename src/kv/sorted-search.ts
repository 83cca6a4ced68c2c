/** Binary search over arrays kept sorted by a byte-string key (bytewise, like memcmp). */

/** Index of the item whose key equals `key`, or -(insertion point) - 1 when there is none. */
export function searchSorted<T>(
  items: readonly T[],
  key: Uint8Array,
  keyOf: (item: T) => Uint8Array,
): number {
  let lo = 0;
  let hi = items.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const order = Buffer.compare(keyOf(items[mid]!), key);
    if (order < 0) lo = mid + 1;
    else if (order > 0) hi = mid - 1;
    else return mid;
  }
  return -lo - 1;
}
