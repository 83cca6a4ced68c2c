/**
 * Thin promise wrappers over the callback fs API on raw descriptors. The hot path (fdatasync per
 * batch) avoids FileHandle objects and fs/promises' extra bookkeeping.
 */
import { close, fdatasync, fsync, open, write, writeSync } from 'node:fs';

export function openFile(path: string, flags: string): Promise<number> {
  return new Promise((resolve, reject) => open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function closeFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => close(fd, (err) => (err ? reject(err) : resolve())));
}

export function fdatasyncFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export function fsyncFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** Writes all of buf[offset, offset + length) at `position`, looping over short writes. */
export async function writeFully(
  fd: number,
  buf: Uint8Array,
  offset: number,
  length: number,
  position: number,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const n = await new Promise<number>((resolve, reject) =>
      write(fd, buf, offset + done, length - done, position + done, (err, written) =>
        err ? reject(err) : resolve(written),
      ),
    );
    if (n <= 0) throw new Error(`write returned ${n} at position ${position + done}`);
    done += n;
  }
}

/**
 * Synchronous variant for the append path: copying a batch into the page cache takes microseconds,
 * less than a round trip through libuv's thread pool.
 */
export function writeFullySync(
  fd: number,
  buf: Uint8Array,
  offset: number,
  length: number,
  position: number,
): void {
  let done = 0;
  while (done < length) {
    const n = writeSync(fd, buf, offset + done, length - done, position + done);
    if (n <= 0) throw new Error(`write returned ${n} at position ${position + done}`);
    done += n;
  }
}
