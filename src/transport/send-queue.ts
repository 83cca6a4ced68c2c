/**
 * A bounded FIFO of encoded envelopes waiting to be written to one peer.
 *
 * When it is full the OLDEST entries are dropped to make room: Raft tolerates lost messages, and
 * the newest ones (latest heartbeat, latest append, latest vote) are the ones worth delivering
 * after a stall. A dropped request envelope fails its caller at once (its `onDrop` runs).
 */
export type DropReason = 'queue_full' | 'too_large' | 'closed';

export interface QueuedEnvelope {
  bytes: Buffer;
  /** Runs when the entry is dropped unsent (queue overflow, larger than the peer accepts, peer removed). */
  onDrop?: (reason: DropReason) => void;
  /** Runs when the entry is handed to the socket. */
  onWrite?: () => void;
}

export class SendQueue {
  private items: (QueuedEnvelope | undefined)[] = [];
  private head = 0;
  private byteCount = 0;
  droppedQueueFull = 0;

  constructor(
    readonly maxMessages: number,
    readonly maxBytes: number,
  ) {
    if (!Number.isInteger(maxMessages) || maxMessages < 1)
      throw new Error('SendQueue: maxMessages must be >= 1');
    if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new Error('SendQueue: maxBytes must be >= 1');
  }

  get length(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.byteCount;
  }

  /** Appends; drops the oldest entries while either bound would be exceeded. */
  push(entry: QueuedEnvelope): void {
    if (entry.bytes.length > this.maxBytes) {
      throw new Error(`SendQueue: an entry of ${entry.bytes.length} bytes can never fit in ${this.maxBytes}`);
    }
    while (
      this.length > 0 &&
      (this.length + 1 > this.maxMessages || this.byteCount + entry.bytes.length > this.maxBytes)
    ) {
      const dropped = this.shift()!;
      this.droppedQueueFull++;
      dropped.onDrop?.('queue_full');
    }
    this.items.push(entry);
    this.byteCount += entry.bytes.length;
  }

  /** The oldest entry without removing it. */
  peek(): QueuedEnvelope | undefined {
    return this.length > 0 ? this.items[this.head] : undefined;
  }

  shift(): QueuedEnvelope | undefined {
    if (this.length === 0) return undefined;
    const entry = this.items[this.head]!;
    this.items[this.head] = undefined;
    this.head++;
    this.byteCount -= entry.bytes.length;
    // Compact once the consumed prefix dominates, keeping shift O(1) amortized.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (this.byteCount < 0) throw new Error('SendQueue: byte count went negative');
    return entry;
  }

  /** Empties the queue, telling every request entry it was not sent. */
  clear(reason: 'closed'): void {
    for (let entry = this.shift(); entry; entry = this.shift()) entry.onDrop?.(reason);
  }
}
